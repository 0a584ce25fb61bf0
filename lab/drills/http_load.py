"""HTTP load with wrk (Debian's package), and single requests, against the lab's addresses only.

wrk prints its figures as text; :func:`parse_wrk` reads the throughput, the latency percentiles of
``--latency`` and the errors (socket errors and non-2xx/3xx responses) by their labels.
"""

from __future__ import annotations

import ipaddress
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

from toolkit.adapters.errors import TargetError

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass(frozen=True)
class LoadResult:
    """What one wrk run measured."""

    url: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int

    @property
    def ok_rps(self) -> float:
        """Successful responses per second: an error page served fast is not throughput."""
        return max(self.requests - self.errors, 0) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            "url": self.url,
            "connections": self.connections,
            "seconds": self.seconds,
            "requests": self.requests,
            "rps": round(self.rps, 1),
            "ok_rps": round(self.ok_rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "errors": self.errors,
        }


def _ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not match:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(url: str, connections: int, output: str) -> LoadResult:
    """Read wrk's report.

    >>> out = '''Running 5s test @ http://127.0.0.1:8001/books/
    ...   2 threads and 8 connections
    ...   Latency Distribution
    ...      50%    3.10ms
    ...      75%    4.00ms
    ...      90%    5.00ms
    ...      99%    1.20s
    ...   1500 requests in 5.01s, 1.00MB read
    ...   Socket errors: connect 0, read 1, write 0, timeout 2
    ...   Non-2xx or 3xx responses: 4
    ... Requests/sec:    299.40
    ... '''
    >>> r = parse_wrk("u", 8, out)
    >>> (r.requests, r.rps, r.p50_ms, r.p99_ms, r.errors, r.seconds)
    (1500, 299.4, 3.1, 1200.0, 7, 5.01)
    """
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not done or not rps:
        tail = output.strip().splitlines()[-1] if output.strip() else "no output"
        raise TargetError(url, "load with wrk", f"no figures in wrk's output ({tail})", "run wrk by hand")
    pct = {m.group(1): _ms(m.group(2)) for m in re.finditer(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.M)}
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", output))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors += int(non2xx.group(1)) if non2xx else 0
    return LoadResult(
        url=url,
        connections=connections,
        seconds=_ms(done.group(2) + done.group(3)) / 1000.0,
        requests=int(done.group(1)),
        rps=float(rps.group(1)),
        p50_ms=pct.get("50", 0.0),
        p99_ms=pct.get("99", 0.0),
        errors=errors,
    )


# The lab's bridge is in 198.18.0.0/15, the range set aside for benchmark networks; loopback as well.
LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")


def lab_address(url: str) -> None:
    """Refuse a URL whose host is not a lab address (loopback or 198.18.0.0/15): load goes nowhere else.

    >>> lab_address("http://198.18.0.13:8000/books/")
    >>> lab_address("http://192.0.2.1/")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    toolkit.adapters.errors.TargetError: http://192.0.2.1/: not a lab address during load; ...
    """
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        ip = ipaddress.ip_address(host)
        ok = ip.is_loopback or ip in LAB_NETWORK
    except ValueError:
        ok = host == "localhost"
    if not ok:
        raise TargetError(
            url, "load", "not a lab address", "load and drills target 127.0.0.0/8 and 198.18.0.0/15 only"
        )


class Wrk:
    """One wrk run in the background: start it, do other things, then read its result."""

    def __init__(self, url: str, connections: int, seconds: float, timeout_s: float = 10.0) -> None:
        lab_address(url)
        binary = shutil.which("wrk")
        if binary is None:
            raise TargetError(
                "wrk", "load", "not installed", "apt-get install wrk (the django_demo role does)"
            )
        self.url, self.connections = url, connections
        argv = [
            binary,
            "--latency",
            f"-t{max(1, min(2, connections))}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            url,
        ]
        self._proc = subprocess.Popen(  # noqa: S603 (fixed argv, a lab URL)
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )

    def result(self) -> LoadResult:
        """Wait for wrk to finish and parse its report."""
        out, _ = self._proc.communicate()
        return parse_wrk(self.url, self.connections, out)

    def stop(self) -> None:
        """Stop wrk early (its report is lost)."""
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.communicate()


def load(url: str, connections: int, seconds: float, timeout_s: float = 10.0) -> LoadResult:
    """Run wrk in the foreground."""
    return Wrk(url, connections, seconds, timeout_s).result()


def request(url: str, method: str = "GET", body: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """One JSON request to a lab URL."""
    lab_address(url)
    data = body.encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http to a lab address, checked)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            parsed: dict[str, Any] = json.loads(resp.read().decode())
            return parsed
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise TargetError.from_exception(url, method, exc, timeout) from None

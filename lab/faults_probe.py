"""What the fault runner measures: doctor from this machine, HTTP load on the app nodes, and the pools
of the PgBouncer host that carries the load while the other one is down.

The load is plain HTTP GETs of /books/ (a page of books read through the PgBouncer tier: every request
opens a database connection, CONN_MAX_AGE is 0) from this machine against both app nodes, a few
clients per node in threads. A request succeeds when it answers 200 within REQUEST_TIMEOUT.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.faults_ops import ROOT

APPS = {"app1": "198.18.0.13", "app2": "198.18.0.14"}
VIEW = "/books/"
REQUEST_TIMEOUT = 8.0
CLIENTS_PER_NODE = 2
SEVERITY_EXIT = {"critical": 2, "unknown": 3, "warning": 1}


@dataclass
class Load:
    total: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.ok / self.total if self.total else 0.0

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "total": self.total,
            "ok": self.ok,
            "share": round(self.share, 4),
            "p50_s": round(statistics.median(lat), 3) if lat else None,
            "max_s": round(lat[-1], 3) if lat else None,
            "errors": dict(sorted(self.errors.items())),
        }


def one_request(addr: str) -> tuple[bool, float, str]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{addr}:8000{VIEW}", timeout=REQUEST_TIMEOUT) as resp:
            resp.read()
            return resp.status == 200, time.monotonic() - started, f"http {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, time.monotonic() - started, f"http {exc.code}"
    except (OSError, urllib.error.URLError) as exc:
        reason = getattr(exc, "reason", exc)
        return False, time.monotonic() - started, type(reason).__name__


def load(seconds: float, clients_per_node: int = CLIENTS_PER_NODE) -> Load:
    """GET the view from every app node, `clients_per_node` at a time each, for `seconds`."""
    result, lock = Load(), threading.Lock()
    deadline = time.monotonic() + seconds

    def client(addr: str) -> None:
        while time.monotonic() < deadline:
            ok, elapsed, what = one_request(addr)
            with lock:
                result.total += 1
                if ok:
                    result.ok += 1
                    result.latencies.append(elapsed)
                else:
                    result.errors[what] = result.errors.get(what, 0) + 1
            if not ok:
                time.sleep(0.2)  # a refused request must not spin

    threads = [
        threading.Thread(target=client, args=(addr,), daemon=True)
        for addr in APPS.values()
        for _ in range(clients_per_node)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return result


@dataclass(frozen=True)
class Doctor:
    exit_code: int
    wall_s: float
    status: str
    findings: tuple[tuple[str, str, str], ...]  # (id, severity, target)
    targets: dict[str, dict[str, Any]]  # address -> {name, ok, cause}

    def keys(self) -> set[tuple[str, str]]:
        return {(f[0], f[2]) for f in self.findings}

    def about(self, address: str) -> dict[str, Any]:
        """What doctor said about the target at this host address: its findings and whether it answered."""
        mark = f"{address}:"
        target = next((t for a, t in self.targets.items() if a.startswith(mark)), None)
        return {
            "target": target,
            "findings": sorted({f"{f[0]} ({f[1].upper()})" for f in self.findings if mark in f[2]}),
        }

    def documented_exit(self) -> int:
        """The exit code docs/checks.md gives for these findings: CRITICAL outranks UNKNOWN."""
        severities = {f[1] for f in self.findings}
        for severity in ("critical", "unknown", "warning"):
            if severity in severities:
                return SEVERITY_EXIT[severity]
        return 0


def doctor() -> Doctor:
    started = time.monotonic()
    proc = subprocess.run(  # noqa: S603 (argument lists built here)
        [str(ROOT / ".venv" / "bin" / "toolkit"), "doctor", "-i", "inventory/lab", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    wall = time.monotonic() - started
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError(
            f"faults: doctor printed no JSON (exit {proc.returncode}): {proc.stderr[-300:]}"
        ) from None
    return Doctor(
        exit_code=proc.returncode,
        wall_s=round(wall, 2),
        status=str(report.get("status")),
        findings=tuple(
            sorted((str(f["id"]), str(f["severity"]), str(f["target"])) for f in report.get("findings", []))
        ),
        targets={
            str(t["address"]): {"name": t["name"], "ok": t["ok"], "cause": t.get("cause")}
            for t in report.get("targets", [])
        },
    )


def healthy_like(now: Doctor, baseline: Doctor) -> bool:
    """Doctor is back to its baseline: the same exit code, the same targets answering, and no finding it
    did not report before the faults (one of the baseline's may be gone: a finding that flickers)."""
    return (
        now.exit_code == baseline.exit_code
        and now.keys() <= baseline.keys()
        and {a: t["ok"] for a, t in now.targets.items()} == {a: t["ok"] for a, t in baseline.targets.items()}
    )


def wait_healthy(baseline: Doctor, seconds: float) -> dict[str, Any]:
    """Poll until doctor is back to its baseline and a short load succeeds in full; report how long."""
    started = time.monotonic()
    deadline = started + seconds
    last: dict[str, Any] = {}
    while True:
        now = doctor()
        probe = load(2.0, clients_per_node=1) if healthy_like(now, baseline) else Load()
        ok = healthy_like(now, baseline) and probe.total > 0 and probe.ok == probe.total
        last = {
            "healthy": ok,
            "doctor_back": healthy_like(now, baseline),
            "doctor_exit": now.exit_code,
            "new": sorted(now.keys() - baseline.keys()),
            "requests": probe.summary(),
            "seconds": round(time.monotonic() - started, 1),
        }
        if ok or time.monotonic() > deadline:
            return last
        time.sleep(2)


def as_dict(d: Doctor) -> dict[str, Any]:
    return asdict(d)

"""The demo Django app over HTTP, as a workload of bench/pool_sizing.py.

The lab's role ``django_demo`` installs the app and its launcher ``/opt/toolkit-demo/bin/serve NODE PORT``
(run as root, it drops to the user ``toolkit-demo``; ``TOOLKIT_DEMO_ETC=DIR`` makes it read
``DIR/NODE.json`` instead of /opt/toolkit-demo/etc). For each run the bench starts one instance of its own,
node ``bench-http`` on a free loopback port from 8201 up (the lab's nodes keep 8001 and 8002), from a copy
of app-1's config (it holds passwords: the copy lives in a private temporary directory, mode 0750
root:toolkit-demo, the file 0640, and nothing of it is printed) in which only these change:

- ``database``: host and port of the bench's PgBouncer for that run (or PostgreSQL itself for the
  direct ceiling); database and user stay app-1's (``app``), which the bench PgBouncer then serves,
  logging in with the user's SCRAM verifier as PostgreSQL stores it (as the lab's PgBouncer does);
- ``server``, ``workers``, ``threads``: gunicorn gthread with enough threads to hold the bench's client
  count (every thread holds at most one database connection, Django's CONN_MAX_AGE is 0 in the demo);
- the cache is the instance's own memory (``TOOLKIT_DEMO_CACHE=locmem``): the endpoint loaded does not
  use the cache, and the lab's Redis is never touched.

Not on the fleet yet: :func:`unavailable` names :data:`FLEET_REASON` and pool_sizing.py skips the
workload, saying why.

wrk (lab/drills/http_load.py) loads ``GET /books/`` (the first 50 books with their authors, one
query) over keep-alive connections, one per bench client. The instance is stopped after its run (SIGINT
to its process group: gunicorn's quick shutdown; SIGKILL if it lingers) and on any error or Ctrl-C.
"""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pgbouncer_lab import LabError, port_is_free

from lab.drills import http_load

SERVE = Path("/opt/toolkit-demo/bin/serve")
SOURCE = Path("/opt/toolkit-demo/etc/app-1.json")
DEMO_USER = "toolkit-demo"
NODE = "bench-http"
# On the fleet the demo app runs on the app hosts, and pg_hba admits its role only from the PgBouncer
# hosts: the per-run instance (and the direct ceiling) of this workload are not ported to the app hosts
# yet, so the bench says why and measures the pgbench workloads.
FLEET_REASON = (
    "the lab is the fleet: the demo app runs on the app hosts, and this workload's per-run instance "
    "(started here with /opt/toolkit-demo/bin/serve) is not ported to them yet"
)
FIRST_PORT = 8201
ENDPOINT = "/books/"


def write_node_config(path: Path, config: Mapping[str, Any], group: int) -> None:
    """Write a demo node's config file as the role does: mode 0640, root and the app's group.

    It holds passwords, so it is created with its mode (never readable by others, not even briefly)
    and replaces nothing: an existing file is removed first.
    """
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    os.chown(path, 0, group)


def unavailable() -> str | None:
    """Why the demo app cannot be benchmarked here, or None if it can."""
    if FLEET_REASON:
        return FLEET_REASON
    if not SERVE.exists():
        return f"{SERVE} does not exist (the lab role django_demo deploys it)"
    if not SOURCE.exists():
        return f"{SOURCE} does not exist (the lab role django_demo writes it)"
    if shutil.which("wrk") is None:
        return "wrk is not installed (apt-get install wrk; the django_demo role installs it)"
    if os.geteuid() != 0:
        return "the demo's launcher and its config need root"
    try:
        pwd.getpwnam(DEMO_USER)
    except KeyError:
        return f"the user {DEMO_USER} does not exist"
    return None


class DemoHttp:
    """Instances of the demo app for the bench, one at a time, and their private config directory."""

    def __init__(self, workers: int, threads: int) -> None:
        self.workers, self.threads = workers, threads
        source: dict[str, Any] = json.loads(SOURCE.read_text())
        self._source = source
        db = source["database"]
        if not all(re.fullmatch(r"[a-z_][a-z0-9_]*", str(db[k])) for k in ("user", "name")):
            raise LabError(f"{SOURCE}: unexpected database or user name")
        self.database, self.user = str(db["name"]), str(db["user"])
        self.direct = (str(source["database_direct"]["host"]), int(source["database_direct"]["port"]))
        self._gid = grp.getgrnam(DEMO_USER).gr_gid
        self.dir = Path(tempfile.mkdtemp(prefix="pool-sizing-http-"))
        os.chown(self.dir, 0, self._gid)
        self.dir.chmod(0o750)
        self._proc: subprocess.Popen[bytes] | None = None
        self._next_port = FIRST_PORT
        self.url = ""

    def close(self) -> None:
        """Stop the instance if one runs and remove the config directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _free_port(self) -> int:
        while self._next_port < FIRST_PORT + 200:
            port = self._next_port
            self._next_port += 1
            if port_is_free(port):
                return port
        raise LabError("no free loopback port between 8201 and 8400 for the bench's demo instance")

    def _write_config(self, host: str, port: int, http_port: int) -> None:
        config = {
            **self._source,
            "node": NODE,
            "port": http_port,
            "bind": "127.0.0.1",
            "server": "wsgi_gthread",
            "workers": self.workers,
            "threads": self.threads,
            "database": {**self._source["database"], "host": host, "port": port},
        }
        write_node_config(self.dir / f"{NODE}.json", config, self._gid)

    def start(self, db_host: str, db_port: int, wait_s: float = 60.0) -> str:
        """Start an instance whose database is ``db_host:db_port``; return its base URL once it answers."""
        self.stop()
        http_port = self._free_port()
        self._write_config(db_host, db_port, http_port)
        with (self.dir / "serve.log").open("ab") as log:
            self._proc = subprocess.Popen(  # noqa: S603 - the role's launcher, fixed argv
                [str(SERVE), NODE, str(http_port)],
                env={**os.environ, "TOOLKIT_DEMO_ETC": str(self.dir), "TOOLKIT_DEMO_CACHE": "locmem"},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                process_group=0,  # stopped as a group; a Ctrl-C reaches the bench, which stops it
            )
        self.url = f"http://127.0.0.1:{http_port}"
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise LabError(f"the demo instance exited with {code} at start: {self._log_tail()}")
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp,  # noqa: S310 - loopback
            ):
                if resp.status == 200:
                    return self.url
            time.sleep(0.2)
        raise LabError(f"the demo instance on {self.url} did not answer /healthz within {wait_s:g} s")

    def _log_tail(self) -> str:
        text = (self.dir / "serve.log").read_text(errors="replace").strip().splitlines()
        return " | ".join(text[-3:])[:400]

    def load(self, connections: int, seconds: float) -> dict[str, Any]:
        """wrk on ENDPOINT: requests/s and latency percentiles, in the bench's pgbench-shaped result."""
        res = http_load.load(self.url + ENDPOINT, connections, seconds)
        return {
            "tps": res.rps,
            "p50_ms": res.p50_ms,
            "p99_ms": res.p99_ms,
            "transactions": res.requests,
            "failed": res.errors,
            "aborted_clients": 0,
            "pgbench_exit": None,
            "error": "" if not res.errors else f"{res.errors} wrk errors (socket errors or non-2xx)",
        }

    def stop(self) -> None:
        """Stop the running instance and its workers (quick shutdown, then SIGKILL)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in ((signal.SIGINT, 15.0), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
            # The master is gone; make sure no worker of its group outlives it.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return

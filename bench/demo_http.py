"""The demo Django app over HTTP, as a workload of bench/pool_sizing.py, on the lab's first app host.

The lab's role ``django_demo`` installs the app and its launcher ``/opt/toolkit-demo/bin/serve NODE PORT``
on every app host (``TOOLKIT_DEMO_ETC=DIR`` makes it read ``DIR/NODE.json`` instead of
/opt/toolkit-demo/etc). The bench starts ONE instance of its own for the whole run, node ``bench-http``
on the first app host of inventory/lab (app1: gunicorn gthread there) on a free port from 8201 up (the
lab's node keeps 8000), as a transient systemd unit ``pool-sizing-*-http`` running as the app's user,
from a copy of that host's node config (it holds passwords: it goes over ssh's standard input into a
private directory under /run, mode 0600, and nothing of it is printed) in which only these change:

- ``database``: the first PgBouncer host's address and the one port on which the bench starts the
  HTTP workload's PgBouncer for every run (a new process per run, same port); database and user stay
  the node's (``app``), which the bench PgBouncer serves with the role's SCRAM verifier as PostgreSQL
  stores it (as the lab's PgBouncer does); the lab's pg_hba admits ``app`` from the PgBouncer hosts;
- ``server``, ``workers``, ``threads``: gunicorn gthread with enough threads to hold the bench's
  clients (a thread holds at most one database connection; the demo's CONN_MAX_AGE is 0, so a
  request opens its own connection and nothing is carried from one run's PgBouncer to the next);
- the cache is the instance's own memory (``TOOLKIT_DEMO_CACHE=locmem``): the endpoint loaded does not
  use the cache, and the lab's Redis is never touched.

Why an instance of its own and not the lab's node with the pool SET live on the lab's PgBouncer: the
lab's node has 3 x 4 threads (12 connections at most), so every pool above 12 would measure the same,
and the lab's PgBouncer serves everyone else's tests; the bench's instance takes the bench's clients
and its PgBouncer lives only for its run, like the pgbench workloads'.

wrk (lab/drills/http_load.py) runs on this machine, the controller, and loads ``GET /books/`` (the first
50 books with their authors, one query) over keep-alive connections, one per bench client, across the
lab's network. The unit is stopped at the end, on error, Ctrl-C or SIGTERM (BenchLab's cleanups); a
killed run's unit is removed by the next run.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import time
import urllib.error
import urllib.request
from typing import Any

import fleet
from fleet import FleetError
from pgbouncer_lab import MARK, UNIT_MAX_S, LabError, port_is_free

from lab.drills import http_load

SERVE = "/opt/toolkit-demo/bin/serve"
DEMO_USER = "toolkit-demo"
NODE = "bench-http"
FIRST_PORT = 8201
ENDPOINT = "/books/"


def app_host() -> fleet.Host:
    """The app host the bench's demo instance runs on: the first of group django (app1, gthread)."""
    return fleet.first("django")


def unavailable() -> str | None:
    """Why the demo app cannot be benchmarked on the fleet, or None if it can."""
    if shutil.which("wrk") is None:
        return "wrk is not installed here: apt-get install wrk (make integration and make bench do)"
    try:
        host = app_host()
        found = fleet.ssh(host, f"sudo -n test -x {SERVE} && echo ok", check=False).strip()
    except FleetError as exc:
        return str(exc)
    if found != "ok":
        return f"{SERVE} is missing on {host.name} (the lab role django_demo deploys it: make lab-deploy)"
    return None


class DemoHttp:
    """The bench's demo instance on the first app host, and its private config directory there."""

    def __init__(self, workers: int, threads: int, mark: str) -> None:
        self.workers, self.threads = workers, threads
        self.host = app_host()
        self.unit = f"{mark}-http"
        self.dir = f"/run/{mark}-http"
        source = fleet.ssh(self.host, f"sudo -n cat /opt/toolkit-demo/etc/{self.host.name}.json")
        try:
            self._source: dict[str, Any] = json.loads(source)
            db = self._source["database"]
            self.database, self.user = str(db["name"]), str(db["user"])
        except (ValueError, KeyError, TypeError):
            raise LabError(f"{self.host.name}: the demo node's config is not as the role writes it") from None
        self.url = ""
        self.started = False

    def start(self, db_host: str, db_port: int, wait_s: float = 90.0) -> str:
        """Start the instance, its database ``db_host:db_port``; return its base URL once it answers."""
        self.stop()
        port = next((p for p in range(FIRST_PORT, FIRST_PORT + 100) if port_is_free(p, self.host.address)), 0)
        if not port:
            raise LabError(
                f"no free port from {FIRST_PORT} on {self.host.name} for the bench's demo instance"
            )
        config = {
            **self._source,
            "node": NODE,
            "port": port,
            "bind": self.host.address,
            "server": "wsgi_gthread",
            "workers": self.workers,
            "threads": self.threads,
            "database": {**self._source["database"], "host": db_host, "port": db_port},
        }
        argv = [
            "/usr/bin/env",
            f"TOOLKIT_DEMO_ETC={self.dir}",
            "TOOLKIT_DEMO_CACHE=locmem",
            SERVE,
            NODE,
            str(port),
        ]
        params = {
            "dir": self.dir,
            "user": DEMO_USER,
            "files": {f"{NODE}.json": json.dumps(config)},
            "unit": self.unit,
            "max_s": UNIT_MAX_S,
            "argv": argv,
        }
        try:
            fleet.run_python(self.host, fleet.START_UNIT, params)
        except FleetError as exc:
            raise LabError(f"the bench's demo instance on {self.host.name}: {exc}") from None
        self.started = True
        self.url = f"http://{self.host.address}:{port}"
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(urllib.error.URLError, OSError),
                urllib.request.urlopen(self.url + "/healthz", timeout=2) as resp,  # noqa: S310 - lab address
            ):
                if resp.status == 200:
                    return self.url
            state = fleet.ssh(self.host, f"systemctl is-active {self.unit}.service", check=False).strip()
            if state in ("failed", "inactive"):
                raise LabError(f"the demo instance on {self.host.name} exited at start: {self._log_tail()}")
            time.sleep(0.5)
        raise LabError(f"the demo instance on {self.url} did not answer /healthz within {wait_s:g} s")

    def _log_tail(self) -> str:
        cmd = f"sudo -n journalctl -q -o cat -n 3 -u {shlex.quote(self.unit)}.service"
        return " | ".join(fleet.ssh(self.host, cmd, check=False).strip().splitlines())[:400]

    def load(self, connections: int, seconds: float) -> dict[str, Any]:
        """wrk on ENDPOINT: requests/s and latency percentiles, in the bench's pgbench-shaped result."""
        res = http_load.load(self.url + ENDPOINT, connections, seconds)
        return {
            "tps": res.ok_rps,
            "p50_ms": res.p50_ms,
            "p99_ms": res.p99_ms,
            "transactions": res.requests,
            "failed": res.errors,
            "aborted_clients": 0,
            "pgbench_exit": None,
            "error": "" if not res.errors else f"{res.errors} wrk errors (socket errors or non-2xx)",
        }

    def stop(self) -> None:
        """Stop the unit (gunicorn and its workers) and remove its directory on the app host."""
        if not self.started:
            return
        self.started = False
        try:
            fleet.run_python(self.host, fleet.CLEAN, {"units": f"{self.unit}.service", "dirs": self.dir})
        except FleetError as exc:
            raise LabError(f"stopping the bench's demo instance on {self.host.name}: {exc}") from None


def clean_leftovers() -> None:
    """Remove what a killed run left on the app host (units and directories named ``pool-sizing-*``)."""
    with contextlib.suppress(FleetError):
        fleet.run_python(app_host(), fleet.CLEAN, {"units": f"{MARK}*.service", "dirs": f"/run/{MARK}*"})

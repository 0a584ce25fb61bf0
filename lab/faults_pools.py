"""Failover headroom, seen live: while one PgBouncer host is down, the other one's pools (SHOW POOLS and
SHOW SERVERS on each of its processes) and PostgreSQL's own count of the app's backends per client
address, against the database's budget from `toolkit plan`.

A process of a so_reuseport PgBouncer is told apart by its peer_id (SHOW CONFIG): new admin connections
are opened until one has landed on each process. Secrets are read from .lab/ and never printed.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg

from lab.faults_ops import ROOT
from toolkit.domain import pgbouncer_rows as show
from toolkit.domain.numbers import as_int

SECRETS = ROOT / ".lab"
DB = "198.18.0.10"
R = TypeVar("R")


def secret(name: str) -> str:
    return (SECRETS / name).read_text().strip()


def admin(addr: str) -> psycopg.Connection[Any]:
    # The admin console speaks only the simple query protocol (FACTS.md): autocommit and ClientCursor.
    return psycopg.connect(
        host=addr,
        port=6432,
        dbname="pgbouncer",
        user="pgbouncer_admin",
        password=secret("pgbouncer_admin_password"),
        autocommit=True,
        cursor_factory=psycopg.ClientCursor,
        connect_timeout=5,
        sslmode="disable",
    )


def rows(conn: psycopg.Connection[Any], command: str, parse: Callable[[Sequence[str], Any], R]) -> R:
    """SHOW ``command``, parsed by the product's typed SHOW parser (toolkit/domain/pgbouncer_rows.py)."""
    cur = conn.execute(f"SHOW {command}")
    return parse([c.name for c in cur.description or []], cur.fetchall())


def peer_id(conn: psycopg.Connection[Any]) -> int:
    entry = rows(conn, "CONFIG", show.config).get("peer_id")
    return as_int(entry.value) if entry else 0


def per_process(addr: str, processes: int, tries: int = 40) -> dict[int, psycopg.Connection[Any]]:
    """One admin connection on each process of the PgBouncer at addr, keyed by peer_id (0: no peers)."""
    found: dict[int, psycopg.Connection[Any]] = {}
    for _ in range(tries):
        conn = admin(addr)
        pid = peer_id(conn)
        if pid in found:
            conn.close()
        else:
            found[pid] = conn
        if len(found) >= processes:
            break
    return found


def budget() -> dict[str, Any]:
    proc = subprocess.run(  # noqa: S603 (argument lists built here)
        [str(ROOT / ".venv" / "bin" / "toolkit"), "plan", "-i", "inventory/lab", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    plan = json.loads(proc.stdout)
    lines = {line["item"]: int(line["value"]) for line in plan["budget"]["lines"]}
    reserved = -lines.get("superuser_reserved_connections", 0) - lines.get("reserved_connections", 0)
    return {
        "max_connections": int(plan["budget"]["max_connections"]),
        "reserved": reserved,
        "max_minus_reserved": int(plan["budget"]["max_connections"]) - reserved,
        "usable": int(plan["budget"]["usable"]),
        "caps": {h: int(p["server_connections"]) for h, p in plan["pgbouncer"].items()},
        "processes": {h: int(p["processes"]) for h, p in plan["pgbouncer"].items()},
    }


class Sampler:
    """Samples, every `every` seconds until stopped: each process's SHOW POOLS / SHOW SERVERS for the app
    database on the surviving host, and PostgreSQL's app backends per client address."""

    def __init__(self, addr: str, processes: int, every: float = 0.5) -> None:
        self.addr, self.processes, self.every = addr, processes, every
        self.peak_servers: dict[int, int] = {}
        self.peak_clients: dict[int, int] = {}
        self.peak_waiting: dict[int, int] = {}
        self.peak_backends: dict[str, int] = {}
        self.peak_total_backends = 0
        self.samples = 0
        self.last_pools: dict[int, list[show.PoolState]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: str | None = None

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        try:
            self._loop()
        except (psycopg.Error, OSError) as exc:
            self.error = f"{type(exc).__name__}: {str(exc).strip()[:200]}"

    def _loop(self) -> None:
        conns = per_process(self.addr, self.processes)
        monitor = psycopg.connect(
            host=DB,
            port=5432,
            dbname="postgres",
            user="toolkit_monitor",
            password=secret("monitor_password"),
            autocommit=True,
            connect_timeout=5,
            sslmode="disable",
        )
        try:
            while not self._stop.is_set():
                self._sample(conns, monitor)
                time.sleep(self.every)
        finally:
            monitor.close()
            for conn in conns.values():
                conn.close()

    def _sample(self, conns: dict[int, psycopg.Connection[Any]], monitor: psycopg.Connection[Any]) -> None:
        for pid, conn in conns.items():
            pools = [p for p in rows(conn, "POOLS", show.pools) if p.database == "app"]
            servers = [s for s in rows(conn, "SERVERS", show.servers) if s.database == "app"]
            self.last_pools[pid] = pools
            by_pools = sum(p.sv_active + p.sv_idle + p.sv_used + p.sv_tested + p.sv_login for p in pools)
            self.peak_servers[pid] = max(self.peak_servers.get(pid, 0), by_pools, len(servers))
            clients = sum(p.cl_active + p.cl_waiting for p in pools)
            self.peak_clients[pid] = max(self.peak_clients.get(pid, 0), clients)
            waiting = sum(p.cl_waiting for p in pools)
            self.peak_waiting[pid] = max(self.peak_waiting.get(pid, 0), waiting)
        counted = monitor.execute(
            "SELECT host(client_addr), count(*) FROM pg_stat_activity "
            "WHERE datname = 'app' AND backend_type = 'client backend' GROUP BY 1"
        ).fetchall()
        total = 0
        for addr, count in counted:
            self.peak_backends[str(addr)] = max(self.peak_backends.get(str(addr), 0), int(count))
            total += int(count)
        self.peak_total_backends = max(self.peak_total_backends, total)
        self.samples += 1

    def report(self) -> dict[str, Any]:
        return {
            "host": self.addr,
            "samples": self.samples,
            "processes_seen": sorted(self.peak_servers),
            "peak_server_connections_per_process": {str(k): v for k, v in sorted(self.peak_servers.items())},
            "peak_clients_per_process": {str(k): v for k, v in sorted(self.peak_clients.items())},
            "peak_waiting_per_process": {str(k): v for k, v in sorted(self.peak_waiting.items())},
            "peak_app_backends_by_client_addr": dict(sorted(self.peak_backends.items())),
            "peak_app_backends_total": self.peak_total_backends,
            "error": self.error,
        }

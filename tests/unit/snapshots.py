"""Builders of hand-made snapshots for the check tests (a helper module, not a test file).

The topology and its plan are real (``toolkit.domain.sizing.plan``); the live states are built by
hand with healthy defaults, so a test changes only the one value it is about.

The default topology: PostgreSQL at 10.0.0.9:5432 (max_connections 100, 2 cores), one PgBouncer
``pgb1`` at 10.0.0.5:6432 (database ``app``, user ``app``, transaction mode), one app node ``web1``
at 10.0.1.1 (gthread, 4 workers x 4 threads = 16 clients), a cache ``cache1`` and a broker
``broker1``. Its plan: default_pool_size 16, reserve 4, max_client_conn 21, 20 server connections.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.errors import SizingError
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import (
    AppNode,
    DatabaseCapacity,
    PgBouncerHost,
    RedisHost,
    RedisProfile,
    ServerKind,
    Topology,
)
from toolkit.domain.plan import Plan
from toolkit.domain.sizing import plan
from toolkit.domain.snapshot import (
    Backend,
    ClientConn,
    DatabaseRow,
    PgBouncerState,
    PoolState,
    PostgresState,
    RedisState,
    Snapshot,
    TargetStatus,
)

W, C, U = Severity.WARNING, Severity.CRITICAL, Severity.UNKNOWN
PGB_ADDRESS = "10.0.0.5:6432"
PG_ADDRESS = "10.0.0.9:5432"
APP_ADDRESS = "10.0.1.1"


def pgbouncer_host(name: str = "pgb1", **changes: Any) -> PgBouncerHost:
    """A PgBouncer host serving database ``app`` to user ``app``."""
    return replace(PgBouncerHost(name, ("app",), ("app",), listen_addr="10.0.0.5"), **changes)


def app_node(name: str = "web1", **changes: Any) -> AppNode:
    """A gthread app node of 4 workers x 4 threads (16 clients) at 10.0.1.1."""
    node = AppNode(name, ServerKind.WSGI_GTHREAD, workers=4, threads=4, address=APP_ADDRESS)
    return replace(node, **changes)


CACHE = RedisHost("cache1", maxmemory_mb=128)
BROKER = RedisHost("broker1", profile=RedisProfile.BROKER, maxmemory_mb=64)


def topology(
    *,
    pgbouncers: Iterable[PgBouncerHost] | None = None,
    app_nodes: Iterable[AppNode] | None = None,
    redis: Iterable[RedisHost] = (CACHE, BROKER),
    max_connections: int = 100,
    failover_headroom: int = 0,
) -> Topology:
    """The default topology, or one with the given parts replaced."""
    return Topology(
        DatabaseCapacity(max_connections, 2, host="10.0.0.9"),
        tuple(pgbouncers) if pgbouncers is not None else (pgbouncer_host(),),
        tuple(app_nodes) if app_nodes is not None else (app_node(),),
        tuple(redis),
        failover_headroom,
    )


def planned(topo: Topology) -> tuple[Plan | None, SizingError | None]:
    """The real plan, or the sizing error doctor puts in the snapshot."""
    try:
        return plan(topo), None
    except SizingError as exc:
        return None, exc


def snapshot(topo: Topology | None = None, **parts: Any) -> Snapshot:
    """A snapshot of ``topo`` (default topology) with its real plan and the given live parts."""
    topo = topo or topology()
    result, error = planned(topo)
    return Snapshot(topology=topo, plan=result, plan_error=error, **parts)


def planned_config(topo: Topology | None = None, host: str = "pgb1", **changes: Any) -> dict[str, str]:
    """SHOW CONFIG as PgBouncer reports it when the live values are the plan's."""
    result = plan(topo or topology())
    mine = next(p for p in result.pgbouncer if p.host == host)
    config = {name: str(sized.value) for name, sized in mine.settings}
    config["pool_mode"] = mine.pool_mode
    config.update({k: str(v) for k, v in changes.items()})
    return config


def pool(database: str = "app", user: str = "app", **changes: Any) -> PoolState:
    """A SHOW POOLS row, idle unless changed."""
    return replace(PoolState(database, user, 0, 0, 0, 0, 0, 0.0, "transaction"), **changes)


def database_row(name: str = "app", pool_size: int = 16, reserve_pool_size: int = 4) -> DatabaseRow:
    """A SHOW DATABASES row, typed (the parser reads 1.18's ``reserve_pool`` into ``reserve_pool_size``)."""
    return DatabaseRow(
        name, pool_size=pool_size, reserve_pool_size=reserve_pool_size, pool_mode="transaction"
    )


def conn(kind: str = "C", **changes: Any) -> ClientConn:
    """A SHOW CLIENTS (``C``) or SHOW SERVERS (``S``) row, active in database ``app``."""
    base = ClientConn(kind, "app", "app", "active", APP_ADDRESS, 40000, "0x1", "", 0, "")
    return replace(base, **changes)


def clients(n: int, addr: str = APP_ADDRESS, database: str = "app") -> tuple[ClientConn, ...]:
    """``n`` client connections from ``addr``."""
    return tuple(conn(addr=addr, port=40000 + i, ptr=f"0xc{i}", database=database) for i in range(n))


def pgbouncer_state(topo: Topology | None = None, **changes: Any) -> PgBouncerState:
    """pgb1 healthy: the planned config, a recent version, no pools in trouble."""
    state = PgBouncerState(
        host="pgb1",
        address=PGB_ADDRESS,
        version="PgBouncer 1.26.1",
        config=planned_config(topo),
        pools=(pool(),),
        databases=(database_row(),),
        clients=(),
        servers=(),
    )
    return replace(state, **changes)


def backend(pid: int = 1000, **changes: Any) -> Backend:
    """A pg_stat_activity row: an idle client backend of role ``app``, reached through PgBouncer."""
    base = Backend(
        pid=pid,
        usename="app",
        datname="app",
        application_name="",
        client_addr="10.0.0.5",
        backend_type="client backend",
        state="idle",
        xact_age=None,
        query_age=None,
        state_age=None,
        wait_event_type="",
        blocked_by=(),
        query="SELECT 1",
    )
    return replace(base, **changes)


HEALTHY_PG_SETTINGS = {
    "max_connections": "100",
    "superuser_reserved_connections": "3",
    "reserved_connections": "0",
    "idle_in_transaction_session_timeout": "60000",
}


def postgres_state(backends: Iterable[Backend] = (), **settings: str) -> PostgresState:
    """PostgreSQL 15 with the inventory's max_connections and a timeout on idle transactions."""
    return PostgresState(PG_ADDRESS, "15.8", {**HEALTHY_PG_SETTINGS, **settings}, tuple(backends))


def redis_state(host: str = "cache1", info: Mapping[str, Any] | None = None, **changes: Any) -> RedisState:
    """A healthy Redis: the plan's limits, nothing rejected or evicted, a good hit ratio."""
    policy = "noeviction" if host == "broker1" else "allkeys-lru"
    state = RedisState(
        host=host,
        address=f"10.0.0.{8 if host == 'cache1' else 7}:6379",
        info={
            "connected_clients": 12,
            "rejected_connections": 0,
            "evicted_keys": 0,
            "keyspace_hits": 900,
            "keyspace_misses": 100,
            "used_memory": 1048576,
            **(info or {}),
        },
        config={"maxmemory": str(128 * 1024 * 1024), "maxmemory-policy": policy, "maxclients": "42"},
    )
    return replace(state, **changes)


def target(kind: str, ok: bool = True, **changes: Any) -> TargetStatus:
    """A target's status; a failed one was refused after 0.01 s unless changed."""
    address = {"pgbouncer": PGB_ADDRESS, "postgres": PG_ADDRESS, "redis": "10.0.0.8:6379"}[kind]
    name = {"pgbouncer": "pgb1", "postgres": "postgres", "redis": "cache1"}[kind]
    if ok:
        return replace(TargetStatus(name, kind, address, True, 0.01), **changes)
    error = f"{kind}@{address}: connection refused during connect; is the service running there?"
    return replace(TargetStatus(name, kind, address, False, 0.01, "connection refused", error), **changes)


def by_id(found: Iterable[Finding], fid: str) -> list[Finding]:
    """The findings with id ``fid``."""
    return [f for f in found if f.id == fid]


def one(found: Iterable[Finding], fid: str) -> Finding:
    """The single finding with id ``fid``."""
    hits = by_id(found, fid)
    assert len(hits) == 1, (fid, hits)
    return hits[0]


def severity(found: Iterable[Finding], fid: str) -> Severity | None:
    """The severity of the single finding ``fid``, or None when there is none."""
    hits = by_id(found, fid)
    assert len(hits) <= 1, (fid, hits)
    return hits[0].severity if hits else None


DOCS = Path(__file__).resolve().parents[2] / "docs"


@dataclass(frozen=True)
class Case:
    """One row of a check table: the snapshot, and what the check must (or must not) report."""

    fid: str
    name: str
    snap: Snapshot
    severity: Severity | None
    target: str | None = None
    evidence: Mapping[str, Any] | None = None  # a subset of the finding's evidence
    runbook: str | None = None
    summary: str | None = None  # a part of the summary

    def __str__(self) -> str:
        return f"{self.fid}: {self.name}"


def verify(found: list[Finding], case: Case) -> None:
    """Assert that ``found`` holds what ``case`` expects, and nothing else under its id."""
    assert severity(found, case.fid) is case.severity, [f.summary for f in by_id(found, case.fid)]
    if case.severity is None:
        return
    f = one(found, case.fid)
    if case.target is not None:
        assert f.target == case.target
    if case.evidence is not None:
        assert {k: f.evidence.get(k, "<absent>") for k in case.evidence} == dict(case.evidence)
    assert f.runbook == case.runbook
    if case.summary is not None:
        assert case.summary in f.summary, f.summary


def uncovered(catalog: Iterable[CheckInfo], cases: Iterable[Case]) -> list[str]:
    """Catalogue ids without both a case that reports them and one that does not."""
    cases = list(cases)
    return [
        info.id
        for info in catalog
        if not any(c.fid == info.id and c.severity is None for c in cases)
        or not any(c.fid == info.id and c.severity is not None for c in cases)
    ]


def documented_ids(area: str) -> list[str]:
    """The ``### area.name`` headings of docs/checks.d/AREA.md, or of docs/checks.md once merged."""
    part = DOCS / "checks.d" / f"{area}.md"
    text = (part if part.exists() else DOCS / "checks.md").read_text()
    found = re.findall(r"^#{2,3} `?([a-z_]+\.[a-z_]+)`?\s*$", text, flags=re.MULTILINE)
    return [i for i in found if i.startswith(area + ".")]

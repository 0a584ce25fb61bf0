"""Shared by the session runbooks: read sessions as the toolkit's role, and signal them."""

from __future__ import annotations

import time

from toolkit.adapters import postgres
from toolkit.adapters.errors import TargetError
from toolkit.domain.checks.postgres import attribution
from toolkit.domain.runbooks.base import Action
from toolkit.domain.snapshot import Backend, PgBouncerState, PostgresState, Snapshot
from toolkit.gather import read_all
from toolkit.runbooks.base import RunContext


def target(ctx: RunContext) -> postgres.PostgresTarget:
    """The PostgreSQL endpoint, as the toolkit's role (pg_monitor, pg_signal_backend)."""
    ep = next(e for e in ctx.endpoints if e.kind == "postgres")
    return postgres.PostgresTarget(
        ep.address, ep.port, ep.user, ctx.secrets.password("postgres") or "", ep.dbname
    )


def databases(ctx: RunContext, named: str | None) -> set[str]:
    """The databases a runbook may touch: the one named, else those the inventory's PgBouncers serve."""
    served = {d for h in ctx.topology.pgbouncers for d in h.databases}
    if named is None:
        return served
    return {named}


def sessions(ctx: RunContext) -> tuple[list[Backend], dict[int, dict[str, str]], frozenset[str]]:
    """Client sessions, who holds them (through PgBouncer's SHOW SERVERS/CLIENTS), and the superusers."""
    endpoints = [e for e in ctx.endpoints if e.kind in ("postgres", "pgbouncer")]
    statuses, states = read_all(endpoints, ctx.secrets, ctx.timeout)
    pg = next((s for s in states if isinstance(s, PostgresState)), None)
    if pg is None:
        failed = next(s for s in statuses if s.kind == "postgres")
        raise TargetError(
            f"postgres@{failed.address}",
            "reading sessions",
            failed.cause or "error",
            "the runbook acts on nothing it cannot see",
        )
    snap = Snapshot(ctx.topology, None, pgbouncer=tuple(s for s in states if isinstance(s, PgBouncerState)))
    owners = attribution(snap)
    return list(pg.backends), owners, postgres.superusers(target(ctx), ctx.timeout)


def signal(ctx: RunContext, action: Action, how: str, rate: float) -> str:
    """Signal one backend, at most ``rate`` per second."""
    time.sleep(1.0 / rate if rate > 0 else 0)
    pid = int(action.args["pid"])
    done = postgres.signal_backend(target(ctx), pid, how, ctx.timeout)
    return "signalled" if done else "gone already"


def still_present(ctx: RunContext, pids: set[int]) -> set[int]:
    """Which of ``pids`` still exist."""
    backends, _, _ = sessions(ctx)
    return {b.pid for b in backends if b.pid in pids}

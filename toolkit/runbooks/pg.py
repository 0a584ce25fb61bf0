"""Shared by the session runbooks: read sessions (with their identity) as the toolkit's role, and signal
only the session that was planned."""

from __future__ import annotations

import time

from toolkit.adapters import pg_signal, postgres
from toolkit.adapters.errors import TargetError
from toolkit.domain.checks.postgres import attribution
from toolkit.domain.runbooks.base import Action, ActionSkipped
from toolkit.domain.runbooks.sessions import Scope, SessionKey, what_changed
from toolkit.domain.snapshot import Backend, PgBouncerState, Snapshot
from toolkit.gather import read_all
from toolkit.runbooks.base import RunContext, RunOptions


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


def scope(ctx: RunContext, opts: RunOptions, superusers: frozenset[str]) -> Scope:
    """Which sessions this run may act on: the --database (or the served ones), what it leaves alone."""
    return Scope(
        databases=databases(ctx, opts.database),
        superusers=superusers,
        bypass_roles={name for name, _ in ctx.topology.database.bypass_connections},
        include_bypass=opts.include_bypass,
        include_toolkit=opts.include_toolkit,
        max_sessions=opts.max_sessions,
    )


def sessions(
    ctx: RunContext,
) -> tuple[list[Backend], dict[int, SessionKey], dict[int, dict[str, str]], frozenset[str]]:
    """Client sessions with their identities, who holds them (PgBouncer's SHOW SERVERS/CLIENTS), and
    the superusers."""
    pgbouncers = [e for e in ctx.endpoints if e.kind == "pgbouncer"]
    try:
        backends, keys = pg_signal.read_sessions(target(ctx), ctx.timeout)
    except TargetError as exc:
        raise TargetError(
            exc.target, "reading sessions", exc.cause, "the runbook acts on nothing it cannot see"
        ) from None
    _, states = read_all(pgbouncers, ctx.secrets, ctx.timeout)
    snap = Snapshot(ctx.topology, None, pgbouncer=tuple(s for s in states if isinstance(s, PgBouncerState)))
    return backends, keys, attribution(snap), postgres.superusers(target(ctx), ctx.timeout)


def signal(ctx: RunContext, action: Action, how: str, rate: float) -> str:
    """Signal the planned session, at most ``rate`` per second; ActionSkipped if it changed since."""
    time.sleep(1.0 / rate if rate > 0 else 0)
    pid = int(action.args["pid"])
    done = pg_signal.signal_guarded(target(ctx), pid, how, action.guard, ctx.timeout)
    if not done.sent:
        raise ActionSkipped(f"pid {pid} not signalled: {what_changed(action.guard, done.now)}")
    return "signalled"


def matching(ctx: RunContext, actions: tuple[Action, ...] | list[Action]) -> list[Action]:
    """The actions whose session is still exactly as planned (same identity, same state)."""
    backends, keys = pg_signal.read_sessions(target(ctx), ctx.timeout)
    states = {b.pid: b.state for b in backends}
    out = []
    for a in actions:
        pid = int(a.args["pid"])
        key = keys.get(pid)
        if key is None:
            continue
        now = {
            "backend_start": key.backend_start,
            "xact_start": key.xact_start,
            "query_start": key.query_start,
            "state": states.get(pid),
        }
        if all(now.get(k) == v for k, v in a.guard.items()):
            out.append(a)
    return out


def same_backend(ctx: RunContext, actions: tuple[Action, ...] | list[Action]) -> list[int]:
    """Pids of ``actions`` whose backend (pid and backend_start) still exists, whatever it does now."""
    _, keys = pg_signal.read_sessions(target(ctx), ctx.timeout)
    return sorted(
        int(a.args["pid"])
        for a in actions
        if (key := keys.get(int(a.args["pid"]))) is not None
        and key.backend_start == a.guard.get("backend_start")
    )

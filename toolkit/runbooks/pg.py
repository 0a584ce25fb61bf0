"""Shared by the session runbooks: read sessions (with their identity) as the toolkit's role, and signal
only the session that was planned."""

from __future__ import annotations

import time

from toolkit.adapters import pg_signal, postgres
from toolkit.adapters.errors import TargetError
from toolkit.adapters.pgbouncer import AdminTarget, read_links
from toolkit.domain.attribution import PoolerLinks, attribute
from toolkit.domain.runbooks.base import Action, ActionSkipped
from toolkit.domain.runbooks.processes import selected_processes
from toolkit.domain.runbooks.sessions import Scope, SessionKey, what_changed
from toolkit.domain.snapshot import Backend
from toolkit.runbooks.base import RunContext, RunOptions
from toolkit.runbooks.pgb import in_parallel


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
    """Client sessions with their identities, who holds them (toolkit.domain.attribution), and the
    superusers."""
    try:
        backends, keys = pg_signal.read_sessions(target(ctx), ctx.timeout)
    except TargetError as exc:
        raise TargetError(
            exc.target, "reading sessions", exc.cause, "the runbook acts on nothing it cannot see"
        ) from None
    owners = attribute(backends, pooler_links(ctx), ctx.topology.app_nodes)
    return backends, keys, owners, postgres.superusers(target(ctx), ctx.timeout)


def pooler_links(ctx: RunContext) -> list[PoolerLinks]:
    """SHOW CLIENTS/SERVERS of every process of every PgBouncer host, read at once as the stats user.

    A PgBouncer that cannot be read leaves its sessions unattributed (the plan says who holds what
    only where it knows); it never stops the run.
    """
    password = ctx.secrets.password("pgbouncer") or ""
    processes = {h.name: h.processes for h in ctx.topology.pgbouncers}
    targets = [
        AdminTarget(ep.address, ep.port, ep.user, password, ep.name, number)
        for ep in ctx.endpoints
        if ep.kind == "pgbouncer"
        for number in selected_processes(ep.name, processes.get(ep.name, 1), None)
    ]
    read = in_parallel(lambda t: read_links(t, ctx.timeout), targets, ctx.timeout + 2)
    return [
        PoolerLinks(t.label, t.name, t.host, links[0], links[1])
        for t, links, error in read
        if links is not None and error is None
    ]


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

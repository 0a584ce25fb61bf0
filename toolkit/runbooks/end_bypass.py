"""Runbook end-bypass-sessions: list the PostgreSQL sessions that bypass PgBouncer, and end those of one
role; verify they are gone.

pg_stat_activity is read first, then SHOW SERVERS of every PgBouncer process: a server connection that
existed at the first read and still does shows in the second, so it is never taken for a bypass. What
counts as a bypass is defined in toolkit.domain.runbooks.bypass; the signal re-checks the planned
session's backend_start in the same statement (toolkit.adapters.pg_signal).
"""

from __future__ import annotations

from toolkit.adapters import pg_signal, postgres
from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.bypass import plan_end_bypass
from toolkit.runbooks import pg
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "end-bypass-sessions",
    "List the PostgreSQL sessions that bypass PgBouncer; end those of one role (--role)",
    fixes=("postgres.connections_bypass_pgbouncer", "postgres.connections_near_limit"),
    params=(
        "--role",
        "--database",
        "--application-name",
        "--rate",
        "--max",
        "--include-toolkit-sessions",
    ),
)


def pooler_addresses(ctx: RunContext) -> set[str]:
    """Every address the inventory gives a PgBouncer host: its endpoint (listen) and its ansible_host."""
    out = {e.address for e in ctx.endpoints if e.kind == "pgbouncer"}
    for host in ctx.topology.pgbouncers:
        hostvars = ctx.data.hostvars.get(host.name, {})
        out.add(str(hostvars.get("ansible_host") or host.name))
    return out


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read the sessions, then which of them PgBouncer holds, and plan the terminations of --role's."""
    try:
        backends, keys = pg_signal.read_sessions(pg.target(ctx), ctx.timeout)
    except TargetError as exc:
        raise TargetError(
            exc.target, "reading sessions", exc.cause, "the runbook acts on nothing it cannot see"
        ) from None
    links = pg.pooler_links(ctx)  # after the sessions: see the module's docstring
    pooled = {s.remote_pid for link in links for s in link.servers if s.remote_pid}
    addresses = pooler_addresses(ctx) | {link.address for link in links}
    superusers = postgres.superusers(pg.target(ctx), ctx.timeout)
    return plan_end_bypass(
        backends,
        keys,
        target=pg.target(ctx).label,
        role=opts.role,
        pooler_addresses=addresses,
        pooled_pids=pooled,
        budget=dict(ctx.topology.database.bypass_connections),
        scope=pg.scope(ctx, opts, superusers),
        application_name=opts.application_name,
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """Terminate one backend, if its pid still has the planned backend_start."""
    return pg.signal(ctx, action, "terminate", opts.rate)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """The terminated sessions are gone (the same backend: pid and backend_start)."""
    left = pg.same_backend(ctx, plan.actions)
    if left:
        return False, f"still present: pid(s) {', '.join(map(str, left))}"
    return True, f"{len(plan.actions)} bypass session(s) gone"

"""Runbook pgbouncer-reconnect: RECONNECT then WAIT_CLOSE, after a failover or a schema change.

RECONNECT marks every server connection to be closed once it is released; WAIT_CLOSE waits until they
are. WAIT_CLOSE is time-limited (a long transaction holds it): on timeout its session is dropped.
"""

from __future__ import annotations

from toolkit.adapters.pgbouncer import AdminConsole, admin_command
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.pgbouncer import check_database, plan_reconnect
from toolkit.runbooks import pgb
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "pgbouncer-reconnect",
    "RECONNECT then WAIT_CLOSE: new server connections after a failover or a schema change",
    params=("--database", "--target", "--process", "--timeout"),
)


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Plan RECONNECT and WAIT_CLOSE on each target."""
    targets = pgb.admin_targets(ctx)
    if opts.database is not None:
        check_database(opts.database, pgb.served(ctx), INFO.name)
    return plan_reconnect([t.label for t in targets], opts.database)


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """Run one RECONNECT or WAIT_CLOSE."""
    target = pgb.by_label(ctx, action.target)
    database = action.args.get("database")
    command = admin_command(action.kind, str(database) if database else None)
    return pgb.timed(target, [command], ctx.timeout, "a server connection is still in use")


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """No server connection is left waiting to be closed (SHOW SERVERS ``close_needed``)."""
    left = []
    for t in pgb.admin_targets(ctx):
        with AdminConsole(t, ctx.timeout) as console:
            servers = console.servers()
        left += [
            f"{t.label}/{s.database}"
            for s in servers
            if s.close_needed and opts.database in (None, s.database)
        ]
    if left:
        return False, f"{len(left)} old server connection(s) still open: {', '.join(sorted(set(left)))}"
    return True, "every old server connection is closed (SHOW SERVERS)"

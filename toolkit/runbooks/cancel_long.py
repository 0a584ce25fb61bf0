"""Runbook cancel-long-queries: cancel long-running client queries; with --terminate, end the sessions
whose planned query is still running after --grace.

Every signal re-checks the planned query (backend_start, query_start, state) in the same statement: a
session that runs another query by then (a pooled server connection serves many clients) is skipped,
never cancelled or terminated.
"""

from __future__ import annotations

import time
from functools import partial

from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.domain.runbooks.sessions import plan_cancel_long
from toolkit.runbooks import pg
from toolkit.runbooks.base import RunContext, RunOptions, audited

INFO = RunbookInfo(
    "cancel-long-queries",
    "Cancel long-running queries; terminate after a grace period only with --terminate",
    fixes=("postgres.long_running_query", "postgres.long_running_transaction", "postgres.blocked_by_lock"),
    params=(
        "--older-than",
        "--database",
        "--grace",
        "--terminate",
        "--rate",
        "--max",
        "--include-bypass-roles",
        "--include-toolkit-sessions",
    ),
)


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read the sessions and plan the cancellations."""
    if opts.older_than is None:
        raise RunbookUsageError("cancel-long-queries needs --older-than (for example 5m)")
    backends, keys, owners, superusers = pg.sessions(ctx)
    return plan_cancel_long(
        backends,
        owners,
        keys,
        target=pg.target(ctx).label,
        older_than=opts.older_than,
        scope=pg.scope(ctx, opts, superusers),
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """Cancel one query, if it is still the planned one."""
    return pg.signal(ctx, action, "cancel", opts.rate)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """The cancelled queries stopped; with --terminate, end those still running after the grace period."""
    deadline = time.monotonic() + opts.grace
    running = pg.matching(ctx, plan.actions)
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = pg.matching(ctx, running)
    skipped: list[int] = []
    if running and opts.terminate:
        for planned in running:
            action = Action(
                planned.target,
                "pg_terminate_backend",
                dict(planned.args),
                "the planned query still running after the grace period",
                planned.guard,
            )
            try:
                audited(ctx, INFO.name, action, partial(pg.signal, ctx, action, "terminate", opts.rate))
            except ActionSkipped:
                skipped.append(int(action.args["pid"]))
        time.sleep(0.5)
        running = pg.matching(ctx, running)
    if running:
        hint = "" if opts.terminate else "; rerun with --terminate to end the sessions"
        pids = ", ".join(str(a.args["pid"]) for a in running)
        return False, f"still running after {opts.grace:g} s: pid(s) {pids}{hint}"
    extra = f"; {len(skipped)} moved on to another query before --terminate, left alone" if skipped else ""
    return True, f"{len(plan.actions)} planned quer(y/ies) no longer running{extra}"

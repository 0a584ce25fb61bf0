"""Runbook cancel-long-queries: cancel long-running client queries; with --terminate, end the sessions
whose queries are still running after --grace."""

from __future__ import annotations

import time

from toolkit.domain.runbooks.base import Action, RunbookError, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.sessions import plan_cancel_long
from toolkit.runbooks import pg
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "cancel-long-queries",
    "Cancel long-running queries; terminate after a grace period only with --terminate",
    fixes=("postgres.long_running_query", "postgres.long_running_transaction", "postgres.blocked_by_lock"),
    params=("--older-than", "--database", "--grace", "--terminate", "--rate"),
)


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read the sessions and plan the cancellations."""
    if opts.older_than is None:
        raise RunbookError("cancel-long-queries needs --older-than (for example 5m)")
    backends, owners, superusers = pg.sessions(ctx)
    return plan_cancel_long(
        backends,
        owners,
        target=pg.target(ctx).label,
        older_than=opts.older_than,
        databases=pg.databases(ctx, opts.database),
        superusers=superusers,
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """Cancel one query."""
    return pg.signal(ctx, action, "cancel", opts.rate)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """The cancelled queries stopped; with --terminate, end those still running after the grace period."""
    pids = {int(a.args["pid"]) for a in plan.actions}
    deadline = time.monotonic() + opts.grace
    running = _running(ctx, pids)
    while running and time.monotonic() < deadline:
        time.sleep(0.2)
        running = _running(ctx, pids)
    if running and opts.terminate:
        for pid in sorted(running):
            action = Action(
                pg.target(ctx).label, "pg_terminate_backend", {"pid": pid}, "still running after grace"
            )
            ctx.record(INFO.name, action, pg.signal(ctx, action, "terminate", opts.rate))
        time.sleep(0.5)
        running = _running(ctx, pids)
    if running:
        hint = "" if opts.terminate else "; rerun with --terminate to end the sessions"
        return (
            False,
            f"still running after {opts.grace:g} s: pid(s) {', '.join(map(str, sorted(running)))}{hint}",
        )
    return True, f"{len(pids)} quer(y/ies) no longer running"


def _running(ctx: RunContext, pids: set[int]) -> set[int]:
    backends, _, _ = pg.sessions(ctx)
    return {b.pid for b in backends if b.pid in pids and b.state == "active"}

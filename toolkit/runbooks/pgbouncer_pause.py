"""Runbook pgbouncer-pause: PAUSE every PgBouncer in parallel, time-limited, and never leave one half done.

It first refuses while transactions older than --older-than (default 10 s) are open: PAUSE would wait
for them. Then each PgBouncer gets PAUSE on its own admin session within --timeout. If any PAUSE times
out or fails, the pending PAUSE sessions are dropped and every PgBouncer is resumed (each RESUME
audited), and the run exits non-zero.
"""

from __future__ import annotations

from toolkit.adapters import postgres
from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.pgbouncer import (
    DEFAULT_PAUSE_OLDER_THAN,
    check_database,
    long_transactions,
    plan_pause,
)
from toolkit.runbooks import pg, pgb
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "pgbouncer-pause",
    "PAUSE every PgBouncer in parallel (time-limited; on any failure every pool is resumed)",
    params=("--database", "--older-than", "--timeout", "--target", "--process"),
)


def _databases(ctx: RunContext, opts: RunOptions) -> list[str]:
    if opts.database is not None:
        return [check_database(opts.database, pgb.served(ctx), INFO.name)]
    return sorted(pgb.served(ctx))


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Check for long transactions, then plan one parallel PAUSE."""
    targets = pgb.admin_targets(ctx)
    databases = _databases(ctx, opts)
    state = postgres.read_state(pg.target(ctx), ctx.timeout)
    superusers = postgres.superusers(pg.target(ctx), ctx.timeout)
    open_ = long_transactions(state.backends, set(databases), superusers)
    older_than = DEFAULT_PAUSE_OLDER_THAN if opts.older_than is None else opts.older_than
    return plan_pause(
        [t.label for t in targets],
        open_,
        database=opts.database,
        older_than=older_than,
        timeout=ctx.timeout,
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """PAUSE all targets at once; on any failure drop the pending PAUSEs and RESUME everything."""
    targets = [pgb.by_label(ctx, label) for label in pgb.labels(action.target)]
    databases = _databases(ctx, opts)
    whole = opts.database is None
    results = pgb.in_parallel(
        lambda t: pgb.pause(t, databases, ctx.timeout, whole), targets, 2 * ctx.timeout + 2
    )
    failed = [(t, e) for t, _, e in results if e is not None]
    if not failed:
        return "; ".join(f"{t.label}: {r}" for t, r, _ in results)
    # A bare RESUME too, always: it also ends a bare PAUSE left pending by the dropped session.
    finish = {
        t.label: ctx.intend(
            INFO.name,
            Action(
                t.label, "RESUME", {"database": ", ".join(databases)}, "a PAUSE failed: resume every pool"
            ),
        )
        for t in targets
    }
    resumed = pgb.in_parallel(
        lambda t: pgb.resume(t, databases, ctx.timeout, whole=True), targets, 2 * ctx.timeout + 2
    )
    for t, result, error in resumed:
        finish[t.label](result or f"failed: {error}")
    still = [t.label for t, _, e in resumed if e is not None]
    first, error = failed[0]
    cause = error.cause if isinstance(error, TargetError) else f"{type(error).__name__}: {error}"
    hint = (
        "every PgBouncer was resumed"
        if not still
        else f"RESUME failed on {', '.join(still)}: run 'toolkit runbook run pgbouncer-resume --yes' now"
    )
    raise TargetError(first.label, f"PAUSE {', '.join(databases)}", cause, hint)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """SHOW DATABASES on every target: each database paused (or, after a failure, none)."""
    databases = set(_databases(ctx, opts))
    paused: list[str] = []
    running: list[str] = []
    for t in pgb.admin_targets(ctx):
        for name, f in pgb.flags(t, ctx.timeout).items():
            if name in databases:
                (paused if f.paused else running).append(f"{t.label}/{name}")
    if not running:
        return True, f"paused: {', '.join(paused)} (SHOW DATABASES); undo with pgbouncer-resume"
    if not paused:
        return False, f"nothing is paused, every pool is resumed: {', '.join(running)}"
    return False, f"only partly paused ({', '.join(paused)}); run pgbouncer-resume --yes"

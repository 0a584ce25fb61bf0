"""Runbook pgbouncer-resume: RESUME every paused database on every PgBouncer, in parallel.

Plans from SHOW DATABASES (the ``paused`` column); a database that is not paused is left alone. Without
--database a bare RESUME goes first (it ends pgbouncer-pause's bare PAUSE and wakes the queued clients at
once). Also the way out after pgbouncer-kill-database, which leaves the database paused. A bare PAUSE
typed by hand does not show in PgBouncer 1.18's SHOW DATABASES: end it by hand with RESUME.
"""

from __future__ import annotations

from toolkit.adapters.errors import TargetError
from toolkit.adapters.pgbouncer import AdminTarget
from toolkit.domain.pgbouncer_rows import DatabaseRow
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.pgbouncer import check_database, plan_resume
from toolkit.runbooks import pgb
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "pgbouncer-resume",
    "RESUME every paused database on every PgBouncer, in parallel",
    params=("--database", "--timeout", "--target", "--process"),
)


def _flags(ctx: RunContext) -> dict[str, dict[str, DatabaseRow]]:
    results = pgb.in_parallel(lambda t: pgb.flags(t, ctx.timeout), pgb.admin_targets(ctx), ctx.timeout + 2)
    for _, _, error in results:
        if error is not None:
            raise error
    return {t.label: value or {} for t, value, _ in results}


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read SHOW DATABASES everywhere and plan RESUME where something is paused."""
    if opts.database is not None:
        check_database(opts.database, pgb.served(ctx), INFO.name)
    return plan_resume(_flags(ctx), database=opts.database, timeout=ctx.timeout)


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """RESUME the paused databases of every named target at once."""
    targets = [pgb.by_label(ctx, label) for label in pgb.labels(action.target)]
    flags = _flags(ctx)

    def one(t: AdminTarget) -> str:
        dbs = [n for n, f in flags[t.label].items() if f.paused and opts.database in (None, n)]
        return pgb.resume(t, dbs, ctx.timeout, whole=opts.database is None)

    results = pgb.in_parallel(one, targets, 2 * ctx.timeout + 2)
    failed = [(t, e) for t, _, e in results if e is not None]
    if failed:
        t, error = failed[0]
        cause = error.cause if isinstance(error, TargetError) else str(error)
        raise TargetError(
            t.label, "RESUME", cause, "rerun pgbouncer-resume; pools stay paused until it works"
        )
    return "; ".join(f"{t.label}: {r}" for t, r, _ in results)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """No targeted database is paused any more (SHOW DATABASES)."""
    paused = [
        f"{label}/{name}"
        for label, dbs in _flags(ctx).items()
        for name, f in dbs.items()
        if f.paused and opts.database in (None, name)
    ]
    if paused:
        return False, f"still paused: {', '.join(paused)}"
    return True, "nothing paused (SHOW DATABASES)"

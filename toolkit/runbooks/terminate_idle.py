"""Runbook terminate-idle-transactions: end client sessions idle in a transaction, which hold pooled
server connections; verify they are gone.

Every termination re-checks the planned transaction (backend_start, xact_start, query_start, state) in
the same statement: a session that ran another query or began another transaction since the plan is
skipped, never terminated.
"""

from __future__ import annotations

from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.domain.runbooks.sessions import plan_terminate_idle
from toolkit.runbooks import pg
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "terminate-idle-transactions",
    "End client sessions idle in a transaction (they hold pooled server connections)",
    fixes=("postgres.idle_in_transaction", "pgbouncer.clients_waiting", "pgbouncer.pool_exhausted"),
    params=(
        "--older-than",
        "--database",
        "--application-name",
        "--app-node",
        "--rate",
        "--max",
        "--include-bypass-roles",
        "--include-toolkit-sessions",
    ),
)


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read the sessions and plan the terminations."""
    if opts.older_than is None:
        raise RunbookUsageError("terminate-idle-transactions needs --older-than (for example 60s)")
    backends, keys, owners, superusers = pg.sessions(ctx)
    return plan_terminate_idle(
        backends,
        owners,
        keys,
        target=pg.target(ctx).label,
        older_than=opts.older_than,
        scope=pg.scope(ctx, opts, superusers),
        application_name=opts.application_name,
        app_node=opts.app_node,
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """Terminate one backend, if it is still the planned idle transaction."""
    return pg.signal(ctx, action, "terminate", opts.rate)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """The terminated sessions are gone (the same backend: pid and backend_start)."""
    left = pg.same_backend(ctx, plan.actions)
    if left:
        return False, f"still present: pid(s) {', '.join(map(str, left))}"
    return True, f"{len(plan.actions)} session(s) gone"

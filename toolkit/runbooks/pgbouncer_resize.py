"""Runbook pgbouncer-resize-pool: SET default_pool_size live, within the capacity budget.

The budget is the one provisioning uses (toolkit.domain.sizing): a size that would let the pools open
more server connections than PostgreSQL has usable slots is refused before anything changes. A live
SET lasts until the next RELOAD; the plan prints the inventory change that makes it permanent.
"""

from __future__ import annotations

from toolkit.adapters.pgbouncer import AdminConsole, set_command
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.domain.runbooks.pgbouncer import plan_resize
from toolkit.runbooks import pgb
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "pgbouncer-resize-pool",
    "SET default_pool_size live, refused beyond the capacity budget; prints the permanent change",
    fixes=("capacity.server_connections_exceed_db", "capacity.session_mode_pool_too_small"),
    params=("--size", "--target", "--process", "--timeout"),
)


def _live(ctx: RunContext) -> dict[str, str]:
    out = {}
    for t in pgb.admin_targets(ctx):
        with AdminConsole(t, ctx.timeout) as console:
            entry = console.config().get("default_pool_size")
        out[t.label] = entry.value if entry else "?"
    return out


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Check the size against the budget (refused: nothing is read or changed), then plan the SETs."""
    if opts.size is None:
        raise RunbookUsageError("pgbouncer-resize-pool needs --size (the new default_pool_size)")
    targets = [(t.name, t.label) for t in pgb.admin_targets(ctx)]
    plan_resize(ctx.topology, targets, opts.size, {})  # refuse before touching any server
    return plan_resize(ctx.topology, targets, opts.size, _live(ctx))


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """SET default_pool_size on one target."""
    size = int(action.args["default_pool_size"])
    with AdminConsole(pgb.by_label(ctx, action.target), ctx.timeout) as console:
        console.command(set_command("default_pool_size", size))
    return f"default_pool_size {action.args.get('was')} -> {size}"


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """SHOW CONFIG reports the new size on every target."""
    wrong = [f"{label} has {v}" for label, v in _live(ctx).items() if v != str(opts.size)]
    if wrong:
        return False, f"default_pool_size is not {opts.size}: {', '.join(wrong)}"
    return (
        True,
        f"default_pool_size = {opts.size} (SHOW CONFIG); RELOAD reverts it until the inventory says so",
    )

"""Runbook redis-raise-maxclients: raise one Redis's maxclients live with CONFIG SET, within bounds.

The value is ``--maxclients`` or the plan's (``2 x app clients + redis_ops_slots``); it must fit the
open-file limit deployed for the host (``redis_nofile``, else the plan's), minus the 32 descriptors
Redis keeps: above that the run is refused (exit 2), and Redis itself refuses a CONFIG SET its process
limit cannot hold. It never lowers maxclients. CONFIG SET runs as the role's admin user; CONFIG GET,
before the action and for the verification, as doctor's ops user.
"""

from __future__ import annotations

from toolkit.adapters import redis_clients
from toolkit.domain.numbers import as_int
from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.domain.runbooks.redis_clients import RAISE, plan_raise_maxclients
from toolkit.domain.sizing import plan as size
from toolkit.runbooks.base import RunContext, RunOptions
from toolkit.runbooks.redis_hosts import admin_login, one_redis, ops_login

INFO = RunbookInfo(
    RAISE,
    "Raise one Redis's maxclients live (CONFIG SET), within the plan and its open files",
    fixes=("redis.maxclients_below_demand",),
    params=("--target", "--maxclients"),
)


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read the live maxclients and plan the raise."""
    ep, hostvars = one_redis(ctx, RAISE)
    sized = next((r for r in size(ctx.topology).redis if r.host == ep.name), None)
    if sized is None:
        raise RunbookUsageError(f"{ep.name} is not sized by the plan: is it in the inventory's redis group?")
    nofile = as_int(hostvars.get("redis_nofile"), sized.nofile.value)  # the role's override, else the plan's
    live = redis_clients.maxclients(ops_login(ctx, ep), ctx.timeout)
    return plan_raise_maxclients(
        ep.label,
        ep.name,
        live,
        sized.maxclients.value,
        sized.client_demand,
        nofile,
        opts.maxclients,
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """CONFIG SET maxclients, if the live value is still the planned one."""
    ep, hostvars = one_redis(ctx, RAISE)
    now = redis_clients.maxclients(ops_login(ctx, ep), ctx.timeout)
    if now != action.guard["maxclients"]:
        raise ActionSkipped(f"maxclients is {now} now, not the planned {action.guard['maxclients']}")
    value = int(action.args["maxclients"])
    redis_clients.set_maxclients(admin_login(ctx, ep, hostvars), value, ctx.timeout)
    return f"maxclients {now} -> {value}"


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """CONFIG GET maxclients reads the new value back."""
    if not plan.actions:
        return True, "nothing to verify"
    ep, _ = one_redis(ctx, RAISE)
    wanted = int(plan.actions[0].args["maxclients"])
    live = redis_clients.maxclients(ops_login(ctx, ep), ctx.timeout)
    return live == wanted, f"CONFIG GET maxclients on {ep.name}: {live} (wanted {wanted})"

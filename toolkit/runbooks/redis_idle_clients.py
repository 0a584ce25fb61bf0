"""Runbook redis-kill-idle-clients: end the app user's Redis connections idle longer than --older-than.

CLIENT LIST (as doctor's ops user) gives the plan: id, address, user, idle and age of each connection.
Each action re-reads its client (CLIENT LIST ID) and ends it with ``CLIENT KILL ID id USER user ADDR
addr``: the three filters must all match, so an id reused by another connection is never hit. Never
the toolkit's own connection, a replica, a master, a pub/sub subscriber, a blocked client or one in
MULTI. ``--application-name`` narrows to one client name (CLIENT SETNAME); ``--max`` caps the run.
"""

from __future__ import annotations

import time

from toolkit.adapters import redis_clients
from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.domain.runbooks.redis_clients import KILL, plan_kill_idle_clients, still_planned
from toolkit.runbooks.base import RunContext, RunOptions
from toolkit.runbooks.redis_hosts import one_redis, ops_login, role_var

INFO = RunbookInfo(
    KILL,
    "End the app user's Redis connections idle longer than --older-than",
    fixes=("redis.clients_above_demand", "redis.rejected_connections"),
    params=("--target", "--older-than", "--application-name", "--max", "--rate"),
)


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """List the clients and plan one CLIENT KILL per idle connection of the app user."""
    if opts.older_than is None:
        raise RunbookUsageError(f"{KILL} needs --older-than, such as 10m (the idle time to end a client at)")
    ep, hostvars = one_redis(ctx, KILL)
    app_user = role_var(hostvars, "redis_app_user")
    if app_user == ep.user:
        raise RunbookUsageError(
            f"the toolkit logs into {ep.name} as {ep.user!r}, the app's own user: give it the ops user "
            "(toolkit_redis_user) so its own connection cannot be planned"
        )
    own, found = redis_clients.clients(ops_login(ctx, ep), ctx.timeout)
    return plan_kill_idle_clients(
        ep.label,
        found,
        own_id=own,
        app_user=app_user,
        older_than=opts.older_than,
        max_clients=opts.max_sessions,
        name=opts.application_name,
    )


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """End one planned client, if it is still the planned, idle one; at most --rate per second."""
    time.sleep(1.0 / opts.rate if opts.rate > 0 else 0)
    ep, _ = one_redis(ctx, KILL)
    login = ops_login(ctx, ep)
    client_id = int(action.args["id"])
    why = still_planned(redis_clients.client(login, client_id, ctx.timeout), action.guard)
    if why:
        raise ActionSkipped(why)
    addr, user = str(action.args["addr"]), str(action.args["user"])
    if redis_clients.kill(login, client_id, user, addr, ctx.timeout) == 0:
        raise ActionSkipped("the client disconnected before the kill")
    return f"killed client {client_id} ({user}@{addr})"


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """None of the ended clients' ids is in CLIENT LIST any more."""
    if not plan.actions:
        return True, "nothing to verify"
    ep, _ = one_redis(ctx, KILL)
    _, found = redis_clients.clients(ops_login(ctx, ep), ctx.timeout)
    planned = {int(a.args["id"]) for a in plan.actions}
    left = sorted(planned & {c.id for c in found})
    if left:
        return (
            False,
            f"{len(left)} of {len(planned)} client(s) still connected: id {', '.join(map(str, left))}",
        )
    return True, f"{len(planned)} client(s) gone from CLIENT LIST on {ep.name}"

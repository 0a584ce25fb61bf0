# Generated from toolkit/domain/sizing.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/sizing.py and run `python scripts/generate_plugin_utils.py`.
"""The one sizing function: pool sizes from the database's capacity and the Django topology.

Ansible (filter ``toolkit_pool_plan``) and the CLI (``toolkit plan``, ``toolkit doctor``) both call
:func:`plan`, so what is deployed and what is checked cannot disagree.

The budget: PostgreSQL gives ``max_connections`` slots. Superuser-reserved and reserved slots are not
for ordinary roles, and connections that bypass PgBouncer (admin, monitoring, migrations, cron) need
their own. What remains is *usable*, and every (process, pool) pair of every PgBouncer host may open
``default_pool_size + reserve_pool_size`` server connections, so the pool cap is
``usable // (processes x pools, summed over hosts)``.

The target: not the bare ``2 x cores + spindles``. In transaction mode a server connection is held
through every client round trip inside BEGIN...COMMIT, so the database runs its best with
``(2 x cores x cpu_share + spindles) x hold_factor`` server connections (hold factor = transaction
time / query time, default 5; cpu_share = the share of the cores PostgreSQL gets, 1 on a host of its
own). That target is shared by all
live (process, pool) pairs, and no pool is larger than the clients that can use it.

>>> from toolkit.domain.models import *
>>> topo = Topology(
...     database=DatabaseCapacity(max_connections=100, cores=2),
...     pgbouncers=(PgBouncerHost("pgb", databases=("app",), users=("app",)),),
...     app_nodes=(AppNode("web", ServerKind.WSGI_GTHREAD, workers=4, threads=8, pgbouncer_hosts=("pgb",)),),
... )
>>> p = plan(topo)
>>> p.budget.usable, p.budget.active_target
(91, 20)
>>> p.pgbouncer[0].value("default_pool_size"), p.pgbouncer[0].value("reserve_pool_size")
(20, 5)
>>> p.pgbouncer[0].value("max_client_conn")
37
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import SizingError, SizingKind
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.models import (
    AppNode,
    PgBouncerHost,
    PoolMode,
    RedisHost,
    RedisProfile,
    Topology,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.plan import (
    Budget,
    BudgetLine,
    PgBouncerPlan,
    Plan,
    RedisPlan,
    Sized,
)

# PgBouncer's own default when nothing routes clients to a host (no app node declared).
PGBOUNCER_DEFAULT_MAX_CLIENT_CONN = 100
# File descriptors a PgBouncer process needs beyond clients and servers: listen and unix sockets, log.
PGBOUNCER_FD_SLACK = 64
REDIS_DEFAULT_MAXCLIENTS = 10000
# Redis keeps 32 descriptors beyond maxclients for itself (CONFIG_MIN_RESERVED_FDS in its server.h: the
# listening sockets, the log, persistence and replication files) and lowers maxclients when the open-files
# limit cannot hold both.
REDIS_RESERVED_FDS = 32


def plan(topology: Topology) -> Plan:
    """Size every PgBouncer and Redis of ``topology``; raise SizingError if it cannot fit."""
    if not topology.pgbouncers:
        raise SizingError("no PgBouncer host in the topology: add hosts to the 'pgbouncer' group")
    usable, lines = _usable_slots(topology)
    demand = route_demand(topology)
    slots = sum(p.processes * p.pools for p in topology.pgbouncers)
    pool_cap = usable // slots
    if pool_cap < 1:
        raise SizingError(
            f"{slots} (process, pool) pairs need at least 1 server connection each, but only "
            f"{usable} of max_connections {topology.database.max_connections} are usable: "
            "raise database_max_connections, or lower pgbouncer_processes, databases or users"
        )
    db = topology.database
    target = active_target(db.cores, db.spindles, db.hold_factor, db.cpu_share)
    share = math.ceil(target / _live_slots(topology))
    sized: list[PgBouncerPlan] = []
    refusals: list[SizingError] = []
    for p in topology.pgbouncers:  # every host that fails is named, not only the first
        try:
            sized.append(
                _size_pgbouncer(
                    p, demand=demand[p.name], share=share, pool_cap=pool_cap, usable=usable, slots=slots
                )
            )
        except SizingError as exc:
            refusals.append(exc)
    if refusals:
        raise SizingError("; ".join(str(e) for e in refusals), kind=refusals[0].kind)
    plans = tuple(sized)
    used = sum(p.server_connections for p in plans)
    lines += tuple(
        BudgetLine(
            f"pgbouncer {p.host}",
            p.server_connections,
            f"{p.processes} process(es) x {p.pools} pool(s) x (pool {p.value('default_pool_size')}"
            f" + reserve {p.value('reserve_pool_size')})",
        )
        for p in plans
    )
    lines += (BudgetLine("spare", usable - used, "usable slots no PgBouncer process can take"),)
    budget = Budget(topology.database.max_connections, usable, used, target, lines)
    redis = tuple(_size_redis(r, topology.app_nodes) for r in topology.redis)
    return Plan(budget, plans, redis, _past_target(plans, share, target))


def _past_target(plans: tuple[PgBouncerPlan, ...], share: int, target: int) -> tuple[str, ...]:
    """A warning when pools larger than their share of the active target can together exceed it.

    The budget may allow far more server connections than the database runs well with: session mode
    holds one per client, and an inventory may set pgbouncer_default_pool_size past the share.
    """
    pooled = sum(p.processes * p.pools * p.value("default_pool_size") for p in plans)
    over = [p.host for p in plans if p.value("default_pool_size") > share]
    if not over or pooled <= target:
        return ()
    return (
        f"the pools of {', '.join(over)} exceed their share ({share}) of the database's active target: "
        f"together they may open {pooled} server connections at once, {pooled / target:.1f}x the target "
        f"of {target}, and a database past its target slows every query: use transaction mode, fewer "
        "clients, or a smaller pgbouncer_default_pool_size",
    )


def plan_or_error(topology: Topology) -> tuple[Plan | None, SizingError | None]:
    """The plan, or None and the refusal (its ``kind`` picks doctor's capacity finding)."""
    try:
        return plan(topology), None
    except SizingError as exc:
        return None, exc


def active_target(cores: int, spindles: int, hold_factor: float, cpu_share: float = 1.0) -> int:
    """Server connections the database runs best with, all pools together; of its cores, only its share.

    >>> active_target(2, 0, 5.0), active_target(2, 0, 5.0, cpu_share=0.5)
    (20, 10)
    >>> active_target(16, 2, 4.0), active_target(1, 0, 0.1)
    (136, 1)
    """
    return max(1, math.ceil((2 * cores * cpu_share + spindles) * hold_factor))


def route_demand(topology: Topology) -> dict[str, int]:
    """Client connections routed to each PgBouncer host, with failover headroom on shared tiers.

    A node spread over N hosts sends ``ceil(demand / (N - headroom))`` to each, so its demand still
    fits when ``headroom`` of them are down. A node with a single (co-located) PgBouncer goes down
    with it, so it needs no headroom.
    """
    names = {p.name for p in topology.pgbouncers}
    routed = dict.fromkeys(names, 0)
    for node in topology.app_nodes:
        targets = node.pgbouncer_hosts or tuple(sorted(names))
        unknown = [t for t in targets if t not in names]
        if unknown:
            raise SizingError(
                f"app node {node.name} uses PgBouncer host(s) {', '.join(unknown)} that are not in "
                "the 'pgbouncer' group: fix django_pgbouncer_hosts",
                kind=SizingKind.ROUTING,
            )
        live = len(targets) - topology.failover_headroom if len(targets) > 1 else 1
        if live < 1:
            raise SizingError(
                f"app node {node.name} spreads over {len(targets)} PgBouncer hosts, and with "
                f"pgbouncer_failover_headroom {topology.failover_headroom} none is left to serve it: "
                "add PgBouncer hosts or lower the headroom",
                kind=SizingKind.HEADROOM,
            )
        for t in targets:
            routed[t] += math.ceil(node.demand / live)
    return routed


def _usable_slots(topology: Topology) -> tuple[int, tuple[BudgetLine, ...]]:
    db = topology.database
    lines = [
        BudgetLine("max_connections", db.max_connections, "PostgreSQL max_connections"),
        BudgetLine(
            "superuser_reserved_connections", -db.superuser_reserved_connections, "kept for superusers"
        ),
        BudgetLine(
            "reserved_connections",
            -db.reserved_connections,
            "kept for roles with pg_use_reserved_connections",
        ),
    ]
    lines += [
        BudgetLine(f"bypass {name}", -n, "connects to PostgreSQL directly, not through PgBouncer")
        for name, n in db.bypass_connections
    ]
    usable = sum(ln.value for ln in lines)
    if usable < 1:
        raise SizingError(
            f"max_connections {db.max_connections} - superuser reserved "
            f"{db.superuser_reserved_connections} - reserved {db.reserved_connections} - bypass "
            f"{db.bypass_total} leaves {usable} slots for PgBouncer: raise database_max_connections "
            "or lower database_bypass_connections"
        )
    lines.append(BudgetLine("usable", usable, "slots PgBouncer's server connections may take"))
    return usable, tuple(lines)


def _live_slots(topology: Topology) -> int:
    """(process, pool) pairs still up when ``failover_headroom`` of the largest hosts are down."""
    sizes = sorted((p.processes * p.pools for p in topology.pgbouncers), reverse=True)
    down = sum(sizes[: topology.failover_headroom]) if len(sizes) > 1 else 0
    return max(1, sum(sizes) - down)


def _size_pgbouncer(
    host: PgBouncerHost, *, demand: int, share: int, pool_cap: int, usable: int, slots: int
) -> PgBouncerPlan:
    """Size one host's processes. ``demand`` is the clients routed to the whole host."""
    ov = host.overrides
    per_process = math.ceil(demand / host.processes)
    where = f"pgbouncer host {host.name}"
    cap_words = (
        f"{usable} usable slots / {slots} (process, pool) pairs = {pool_cap} server connections per pool"
    )

    if host.pool_mode is PoolMode.SESSION and per_process > pool_cap:
        raise SizingError(
            f"{where}: session mode holds a server connection per client, {per_process} clients per "
            f"process, but the budget allows {pool_cap} per pool ({cap_words}): use transaction mode, "
            "fewer workers, or raise database_max_connections",
            kind=SizingKind.SESSION,
        )
    if ov.default_pool_size is not None:
        pool = Sized(ov.default_pool_size, "set in the inventory (pgbouncer_default_pool_size)")
        if pool.value > pool_cap:
            raise SizingError(
                f"{where}: pgbouncer_default_pool_size {pool.value} exceeds the budget "
                f"({cap_words}): lower it or raise database_max_connections"
            )
        if host.pool_mode is PoolMode.SESSION and pool.value < per_process:
            raise SizingError(
                f"{where}: session mode needs a pool of at least {per_process} (clients per "
                f"process), pgbouncer_default_pool_size is {pool.value}: raise it or use transaction mode",
                kind=SizingKind.SESSION,
            )
    else:
        pool = _computed_pool(host.pool_mode, per_process, share, pool_cap, cap_words)

    reserve = _reserve(ov.reserve_pool_size, pool.value, pool_cap, where, cap_words)
    if ov.min_pool_size is not None:
        if ov.min_pool_size > pool.value:
            raise SizingError(
                f"{where}: pgbouncer_min_pool_size {ov.min_pool_size} exceeds "
                f"default_pool_size {pool.value}: lower it",
                kind=SizingKind.OVERRIDE,
            )
        min_pool = Sized(ov.min_pool_size, "set in the inventory (pgbouncer_min_pool_size)")
    else:
        min_pool = Sized(
            pool.value // 4,
            "a quarter of the pool kept open, so a burst after a quiet spell does not wait for logins",
        )

    per_pool = pool.value + reserve.value
    max_db = Sized(
        per_pool * len(host.users),
        f"(pool {pool.value} + reserve {reserve.value}) x {len(host.users)} user(s): a hard "
        "cap that keeps each database within the budget",
    )
    max_user = Sized(
        per_pool * len(host.databases),
        f"(pool {pool.value} + reserve {reserve.value}) x {len(host.databases)} "
        "database(s): a hard cap per user",
    )
    max_client = _max_client_conn(host, demand)
    server = host.pools * per_pool
    nofile = Sized(
        max(1024, max_client.value + server + PGBOUNCER_FD_SLACK),
        f"max_client_conn {max_client.value} + server connections {server} + {PGBOUNCER_FD_SLACK} "
        "for sockets and logs, at least 1024",
    )
    settings = (
        ("default_pool_size", pool),
        ("min_pool_size", min_pool),
        ("reserve_pool_size", reserve),
        ("max_db_connections", max_db),
        ("max_user_connections", max_user),
        ("max_client_conn", max_client),
    )
    return PgBouncerPlan(
        host.name, host.processes, host.pool_mode.value, host.pools, demand, settings, nofile
    )


def _computed_pool(mode: PoolMode, per_process: int, share: int, pool_cap: int, cap_words: str) -> Sized:
    if mode is PoolMode.SESSION:
        if per_process == 0:
            return Sized(min(share, pool_cap), "session mode, no declared clients: the target share")
        return Sized(
            per_process, f"session mode: one server connection per client, {per_process} clients per process"
        )
    candidates = [
        (share, "the database's active target shared by every live (process, pool) pair"),
        (pool_cap, cap_words),
    ]
    if per_process > 0:
        candidates.append((per_process, f"no more than the {per_process} clients a process serves"))
    value, why = min(candidates, key=lambda c: c[0])
    return Sized(max(1, value), why)


def _reserve(override: int | None, pool: int, pool_cap: int, where: str, cap_words: str) -> Sized:
    if override is not None:
        if pool + override > pool_cap:
            raise SizingError(
                f"{where}: default_pool_size {pool} + pgbouncer_reserve_pool_size {override} exceeds "
                f"the budget ({cap_words}): lower one of them"
            )
        return Sized(override, "set in the inventory (pgbouncer_reserve_pool_size)")
    value = min(math.ceil(pool / 4), pool_cap - pool)
    return Sized(value, "a quarter of the pool for bursts, within the budget")


def _max_client_conn(host: PgBouncerHost, demand: int) -> Sized:
    needed = demand + host.admin_slots
    ov = host.overrides.max_client_conn
    if ov is not None:
        if ov < needed:
            raise SizingError(
                f"pgbouncer host {host.name}: pgbouncer_max_client_conn {ov} is below the "
                f"{demand} clients routed to it + {host.admin_slots} admin slots = {needed}: "
                "raise it or unset it",
                kind=SizingKind.CLIENT_CONN,
            )
        return Sized(ov, "set in the inventory (pgbouncer_max_client_conn)")
    if demand == 0:
        return Sized(
            PGBOUNCER_DEFAULT_MAX_CLIENT_CONN + host.admin_slots,
            "no app node routes here: PgBouncer's default 100 + admin slots",
        )
    return Sized(
        needed,
        f"{demand} clients routed to the host (each process may get all of them: "
        f"so_reuseport does not balance evenly) + {host.admin_slots} admin slots",
    )


def _size_redis(host: RedisHost, nodes: Iterable[AppNode]) -> RedisPlan:
    users = [n for n in nodes if not n.redis_hosts or host.name in n.redis_hosts]
    # A process holds at most its pool's bound (toolkit.django.cache; docs/sizing.md, "4. Redis").
    demand = sum(n.demand for n in users)
    if demand:
        shown = ", ".join(_redis_clients(n) for n in users[:4]) + (
            f", {len(users) - 4} more" if len(users) > 4 else ""
        )
        maxclients = Sized(
            2 * demand + host.ops_slots,
            f"twice the {demand} app clients ({shown}: processes × each process's pool bound, "
            "django_threads, + Celery and extra clients; twice: old and new processes overlap in a "
            f"reload, and a leak shows before it hurts) + {host.ops_slots} ops slots",
        )
    else:
        maxclients = Sized(REDIS_DEFAULT_MAXCLIENTS, "no app node uses this Redis: Redis's default")
    if host.maxmemory_mb is not None:
        maxmemory: int | None = host.maxmemory_mb * 1024 * 1024
        mem_reason = f"{host.maxmemory_mb} MiB set in the inventory (redis_maxmemory_mb)"
    elif host.host_memory_mb is not None:
        maxmemory = int(host.host_memory_mb * host.memory_share) * 1024 * 1024
        mem_reason = f"{host.memory_share:.0%} of the host's {host.host_memory_mb} MiB"
    else:
        maxmemory = None
        mem_reason = (
            f"{host.memory_share:.0%} of host RAM, known when deploying "
            "(set redis_host_memory_mb to see it here)"
        )
    if host.maxmemory_policy:
        policy, why = host.maxmemory_policy, "set in the inventory (redis_maxmemory_policy)"
    elif host.profile is RedisProfile.CACHE:
        policy, why = "allkeys-lru", "a cache evicts the least recently used key when full"
    else:
        policy, why = "noeviction", "a broker must never drop a queued message"
    nofile = Sized(
        max(1024, maxclients.value + REDIS_RESERVED_FDS),
        f"maxclients {maxclients.value} + the {REDIS_RESERVED_FDS} descriptors Redis keeps for itself, "
        "at least 1024",
    )
    return RedisPlan(
        host.name, host.profile.value, demand, maxclients, maxmemory, mem_reason, policy, why, nofile
    )


def _redis_clients(node: AppNode) -> str:
    """``node``'s Redis clients: processes × the pool's bound, ``django_threads`` (sync: 1), + the rest.

    >>> from toolkit.domain.models import ServerKind
    >>> _redis_clients(AppNode("app2", ServerKind.ASGI, workers=2, threads=4, extra_clients=1))
    'app2 2 × 4 + 1'
    """
    rest = node.celery_concurrency + node.extra_clients
    return f"{node.name} {node.workers} × {node.per_process}" + (f" + {rest}" if rest else "")

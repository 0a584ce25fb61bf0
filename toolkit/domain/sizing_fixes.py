"""The smallest changes that make an infeasible topology fit, found by asking the one sizing function.

A refusal that says "use transaction mode, fewer workers, or raise database_max_connections" leaves the
user to bisect. Each candidate here is re-planned with :func:`toolkit.domain.sizing.plan` itself, so a
number this module gives is one the sizing accepts, and the next step down is one it refuses.

>>> from toolkit.domain.models import *
>>> topo = Topology(
...     database=DatabaseCapacity(max_connections=100, cores=8),
...     pgbouncers=(PgBouncerHost("pgb", ("app",), ("app",), pool_mode=PoolMode.SESSION),),
...     app_nodes=(AppNode("web", ServerKind.WSGI_GTHREAD, workers=16, threads=8),),
... )
>>> for fix in smallest_changes(topo):
...     print(fix)
pgbouncer_pool_mode: transaction (the pool then follows the database's active target)
django_workers: at most 11 per app node (now up to 16)
database_max_connections: at least 137 (now 100)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from toolkit.domain.errors import SizingError
from toolkit.domain.models import PoolMode, Topology
from toolkit.domain.sizing import plan

# Far enough for any real server (PostgreSQL's own limit is 262143), small enough for a bounded search.
MAX_CONNECTIONS_CEILING = 262_143


def _fits(topology: Topology) -> bool:
    try:
        plan(topology)
    except SizingError:
        return False
    return True


def _lowest(low: int, high: int, fits: Callable[[int], bool]) -> int | None:
    """The smallest n in [low, high] with fits(n), for a monotone fits; None when even high fails."""
    if not fits(high):
        return None
    while low < high:
        mid = (low + high) // 2
        if fits(mid):
            high = mid
        else:
            low = mid + 1
    return low


def _with_max_connections(topology: Topology, n: int) -> Topology:
    return dataclasses.replace(topology, database=dataclasses.replace(topology.database, max_connections=n))


def _with_worker_cap(topology: Topology, cap: int) -> Topology:
    nodes = tuple(dataclasses.replace(n, workers=min(n.workers, cap)) for n in topology.app_nodes)
    return dataclasses.replace(topology, app_nodes=nodes)


def _in_transaction_mode(topology: Topology) -> Topology:
    hosts = tuple(
        dataclasses.replace(p, pool_mode=PoolMode.TRANSACTION) if p.pool_mode is PoolMode.SESSION else p
        for p in topology.pgbouncers
    )
    return dataclasses.replace(topology, pgbouncers=hosts)


def smallest_changes(topology: Topology) -> list[str]:
    """Each single change that makes ``topology`` fit, with its number; empty when it fits or none does."""
    if _fits(topology):
        return []
    fixes: list[str] = []
    if any(p.pool_mode is PoolMode.SESSION for p in topology.pgbouncers) and _fits(
        _in_transaction_mode(topology)
    ):
        fixes.append("pgbouncer_pool_mode: transaction (the pool then follows the database's active target)")
    most = max((n.workers for n in topology.app_nodes), default=0)
    if most > 1:
        # The largest cap that fits: the smallest cap that fails, minus one (fitting falls as the cap grows).
        failing = _lowest(1, most, lambda cap: not _fits(_with_worker_cap(topology, cap)))
        if failing is not None and failing > 1:
            fixes.append(f"django_workers: at most {failing - 1} per app node (now up to {most})")
    current = topology.database.max_connections
    needed = _lowest(current, MAX_CONNECTIONS_CEILING, lambda n: _fits(_with_max_connections(topology, n)))
    if needed is not None:
        fixes.append(f"database_max_connections: at least {needed} (now {current})")
    return fixes

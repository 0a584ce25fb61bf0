"""Calibration: measure the hold factor and the connections in use from two SHOW STATS samples.

PgBouncer's SHOW STATS keeps running totals per database since it started: transactions
(``total_xact_count``), queries (``total_query_count``), and the microseconds a server connection
spent in transactions (``total_xact_time``) and in queries (``total_query_time``). Two samples taken
``window`` seconds apart give, per pool (database):

- transaction rate ``= Δxact_count / window``
- average transaction time ``= Δxact_time / Δxact_count``
- average query time ``= Δquery_time / Δquery_count``
- queries per transaction ``= Δquery_count / Δxact_count``
- hold factor ``= transaction time / time spent executing queries, per transaction``
  ``= avg xact time / (avg query time × queries per transaction) = Δxact_time / Δquery_time``.
  Not ``avg_xact_time / avg_query_time``: that is the hold factor times the queries per transaction.
- connections in use (Little's law) ``= rate × avg xact time = Δxact_time / window``.

The hold factor of the whole database, used by the sizing (``database_hold_factor``), weighs every
pool by its traffic: ``ΣΔxact_time / ΣΔquery_time``. Autocommit statements count as transactions of one
query, so they pull the factor towards 1.

>>> before = [StatsRow("app", 1000, 5000, 4_000_000, 1_000_000)]
>>> after = [StatsRow("app", 1300, 6500, 5_200_000, 1_300_000)]
>>> (m,) = measure("pgb", before, after, 3.0)
>>> m.xact_rate, m.avg_xact_ms, m.avg_query_ms, m.queries_per_xact
(100.0, 4.0, 0.2, 5.0)
>>> m.hold_factor, m.in_use
(4.0, 0.4)
>>> database_hold_factor([m])
4.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from toolkit.domain.models import Topology
from toolkit.domain.pgbouncer_rows import StatsRow
from toolkit.domain.plan import Plan
from toolkit.domain.sizing import plan

# PgBouncer's own admin pseudo-database: its "transactions" are console commands, not load.
ADMIN_DATABASE = "pgbouncer"
# A measured factor below 1 is noise (a transaction cannot hold a connection for less time than its
# queries run); the sizing is never given less than this.
MIN_HOLD_FACTOR = 1.0


@dataclass(frozen=True)
class PoolMeasure:
    """What one pool (database) did during the window. ``status`` is ok, idle or reset."""

    host: str
    database: str
    window_s: float
    status: str
    xacts: int = 0
    queries: int = 0
    xact_time_us: int = 0
    query_time_us: int = 0

    @property
    def xact_rate(self) -> float:
        """Transactions per second."""
        return self.xacts / self.window_s if self.window_s > 0 else 0.0

    @property
    def avg_xact_ms(self) -> float | None:
        """Average transaction time in milliseconds, or None without transactions."""
        return self.xact_time_us / self.xacts / 1000 if self.xacts else None

    @property
    def avg_query_ms(self) -> float | None:
        """Average query time in milliseconds, or None without queries."""
        return self.query_time_us / self.queries / 1000 if self.queries else None

    @property
    def queries_per_xact(self) -> float | None:
        """Queries per transaction, or None without transactions."""
        return self.queries / self.xacts if self.xacts else None

    @property
    def hold_factor(self) -> float | None:
        """Transaction time / query time, per transaction; None without measured query time."""
        if not self.xacts or self.query_time_us <= 0:
            return None
        return self.xact_time_us / self.query_time_us

    @property
    def in_use(self) -> float:
        """Server connections busy in transactions on average (Little's law: rate x xact time)."""
        return self.xact_time_us / (1e6 * self.window_s) if self.window_s > 0 else 0.0

    @property
    def note(self) -> str:
        """Why a pool has no figures."""
        if self.status == "idle":
            return "no transactions in the window"
        if self.status == "reset":
            return "counters went backwards (PgBouncer restarted?): measure again"
        return ""


def measure(
    host: str,
    before: Iterable[StatsRow],
    after: Iterable[StatsRow],
    window_s: float,
) -> tuple[PoolMeasure, ...]:
    """Per pool of ``host``, what happened between two SHOW STATS samples ``window_s`` apart.

    A pool that appears only in the second sample is measured from zero. Counters that went down
    (PgBouncer restarted between the samples) give a ``reset`` pool, never negative figures.

    >>> row = StatsRow("app", 5, 5, 10, 10)
    >>> measure("pgb", [row], [row], 2.0)[0].note
    'no transactions in the window'
    >>> measure("pgb", [row], [replace(row, total_xact_count=1)], 2.0)[0].status
    'reset'
    """
    if window_s <= 0:
        raise ValueError("the window must be above 0 seconds")
    first = {s.database: s for s in before}
    out: list[PoolMeasure] = []
    for b in after:
        if b.database == ADMIN_DATABASE:
            continue
        a = first.get(b.database, StatsRow(b.database, 0, 0, 0, 0))
        deltas = (
            b.total_xact_count - a.total_xact_count,
            b.total_query_count - a.total_query_count,
            b.total_xact_time - a.total_xact_time,
            b.total_query_time - a.total_query_time,
        )
        if min(deltas) < 0:
            out.append(PoolMeasure(host, b.database, window_s, "reset"))
        elif deltas[0] == 0:
            out.append(PoolMeasure(host, b.database, window_s, "idle"))
        else:
            out.append(PoolMeasure(host, b.database, window_s, "ok", *deltas))
    return tuple(sorted(out, key=lambda m: m.database))


def database_hold_factor(measures: Sequence[PoolMeasure]) -> float | None:
    """The hold factor of all measured pools together, weighted by their time; None if none ran.

    >>> a = PoolMeasure("h", "a", 1.0, "ok", 10, 10, 3_000, 1_000)
    >>> b = PoolMeasure("h", "b", 1.0, "ok", 10, 10, 1_000, 1_000)
    >>> database_hold_factor([a, b])
    2.0
    >>> database_hold_factor([PoolMeasure("h", "c", 1.0, "idle")]) is None
    True
    """
    ok = [m for m in measures if m.status == "ok"]
    query = sum(m.query_time_us for m in ok)
    if not ok or query <= 0:
        return None
    return sum(m.xact_time_us for m in ok) / query


def inventory_hold_factor(measured: float) -> float:
    """The ``database_hold_factor`` to write in the inventory: rounded up to 0.1, at least 1.

    >>> inventory_hold_factor(3.04), inventory_hold_factor(0.97), inventory_hold_factor(2.0)
    (3.1, 1.0, 2.0)
    """
    return max(MIN_HOLD_FACTOR, math.ceil(round(measured * 10, 6)) / 10)


# --- the sweep (``toolkit calibrate --sweep``) -------------------------------------------------------

# The knee: the smallest pool within this fraction of the best throughput of the sweep.
KNEE_TOLERANCE = 0.05
# The largest hold factor the inverse search tries before it falls back to pinning the pool.
MAX_HOLD_FACTOR = 50.0


def knee(tps_by_size: Mapping[int, float], tolerance: float = KNEE_TOLERANCE) -> int:
    """The smallest pool size whose throughput is within ``tolerance`` of the sweep's best.

    A smaller pool leaves fewer connections for everything else and queues less on the database, so
    among sizes that are equal within the noise the smallest wins.

    >>> knee({2: 1400.0, 4: 2000.0, 8: 2300.0, 16: 2390.0, 32: 2260.0})
    8
    >>> knee({4: 100.0})
    4
    """
    if not tps_by_size:
        raise ValueError("the sweep measured no pool size")
    best = max(tps_by_size.values())
    return min(size for size, tps in tps_by_size.items() if tps >= (1 - tolerance) * best)


def values_for_pool(topology: Topology, host: str, pool: int) -> tuple[dict[str, float | int], Plan]:
    """The inventory values that make :func:`~toolkit.domain.sizing.plan` give ``host`` this pool.

    The smallest ``database_hold_factor`` (in steps of 0.1) whose plan sizes ``host``'s
    default_pool_size to ``pool``; if no factor does (the pool is above the budget's cap or the clients
    a process serves, or the target's rounding skips it), ``pgbouncer_default_pool_size`` pinned to it,
    which the sizing validates against the same budget (SizingError if it does not fit).

    >>> from toolkit.domain.models import DatabaseCapacity, PgBouncerHost, AppNode
    >>> topo = Topology(DatabaseCapacity(100, 2), (PgBouncerHost("pgb", ("app",), ("app",)),),
    ...                 (AppNode("web", workers=200),))
    >>> values_for_pool(topo, "pgb", 8)[0]
    {'database_hold_factor': 1.8}
    >>> values_for_pool(topo, "pgb", 95)[0]
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.SizingError: pgbouncer host pgb: pgbouncer_default_pool_size 95 exceeds ...
    """
    for tenths in range(1, int(MAX_HOLD_FACTOR * 10) + 1):
        factor = tenths / 10
        p = plan(replace(topology, database=replace(topology.database, hold_factor=factor)))
        got = _pool_of(p, host)
        if got == pool:
            return {"database_hold_factor": factor}, p
        if got > pool:
            break
    hosts = tuple(
        replace(h, overrides=replace(h.overrides, default_pool_size=pool)) if h.name == host else h
        for h in topology.pgbouncers
    )
    p = plan(replace(topology, pgbouncers=hosts))
    return {"pgbouncer_default_pool_size": pool}, p


def _pool_of(p: Plan, host: str) -> int:
    return next(h.value("default_pool_size") for h in p.pgbouncer if h.host == host)

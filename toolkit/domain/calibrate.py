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
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

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

# The knee: the smallest pool within this fraction of the best throughput of the sweep ...
KNEE_TOLERANCE = 0.05
# ... whose p99 latency is at most this multiple of the best's.
KNEE_P99_FACTOR = 1.2
# The inventory variable the sweep's advice sets on the swept PgBouncer host.
POOL_VARIABLE = "pgbouncer_default_pool_size"


class SweepSample(Protocol):
    """One measured pool size of a sweep (``toolkit.adapters.pgbench.SweepPoint`` is one)."""

    @property
    def pool_size(self) -> int: ...

    @property
    def tps(self) -> float: ...

    @property
    def p99_ms(self) -> float | None: ...


@dataclass(frozen=True)
class KneeResult:
    """The pool size a sweep advises, its figures, and why (one line)."""

    pool_size: int
    throughput: float
    p99_ms: float | None
    reason: str
    best_pool_size: int = 0
    best_throughput: float = 0.0
    best_p99_ms: float | None = None


def knee(
    points: Iterable[SweepSample], tolerance: float = KNEE_TOLERANCE, p99_factor: float = KNEE_P99_FACTOR
) -> KneeResult:
    """The smallest pool size within ``tolerance`` of the best TPS, with p99 <= ``p99_factor`` x the best's.

    The best is the size of the highest throughput (on a tie: the lower p99, then the smaller size).
    A smaller pool leaves connections for everything else and queues less on the database, so among
    sizes equal within the noise the smallest wins, unless its tail latency is worse: a size without a
    p99 (no latency log) cannot show that, so it qualifies only when the best has none either. Several
    points of one size (rounds) count as their median throughput and median p99. The best always
    qualifies, so there is always an answer. Raise ValueError for no points, a negative or non-finite
    figure, or a sweep where no size ran a transaction.

    >>> from types import SimpleNamespace as P
    >>> k = knee([P(pool_size=s, tps=t, p99_ms=9.0) for s, t in ((2, 1400), (8, 2300), (16, 2390))])
    >>> k.pool_size, k.throughput, k.best_pool_size
    (8, 2300.0, 16)
    >>> knee([P(pool_size=8, tps=2300, p99_ms=30.0), P(pool_size=16, tps=2390, p99_ms=20.0)]).pool_size
    16
    """
    if not 0 <= tolerance < 1 or p99_factor < 1:
        raise ValueError("the tolerance must be in [0, 1) and the p99 factor at least 1")
    points = list(points)
    for pt in points:
        figures = (pt.tps,) if pt.p99_ms is None else (pt.tps, pt.p99_ms)
        if pt.pool_size < 1 or any(not math.isfinite(f) or f < 0 for f in figures):
            raise ValueError(f"pool {pt.pool_size}: a pool size must be >= 1 and its figures finite and >= 0")
    if not points:
        raise ValueError("the sweep measured no pool size")
    sizes = {s.pool_size: (s.tps, s.p99_ms) for s in summarize(points)}
    best = max(sizes, key=lambda s: (sizes[s][0], -(sizes[s][1] or 0.0), -s))
    best_tps, best_p99 = sizes[best]
    if best_tps <= 0:
        raise ValueError("no pool size of the sweep ran a transaction: nothing to compare")
    floor = (1 - tolerance) * best_tps
    ceiling = None if best_p99 is None else p99_factor * best_p99
    rejected: list[str] = []
    for size in sorted(sizes):
        tps, p99 = sizes[size]
        if tps < floor:
            rejected.append(f"{size} ({tps / best_tps:.2f} of the best TPS)")
        elif ceiling is not None and (p99 is None or p99 > ceiling):
            rejected.append(f"{size} (p99 {_ms(p99)} > {p99_factor:g} x {_ms(best_p99)})")
        else:
            break
    else:  # pragma: no cover - the best always qualifies
        raise AssertionError("the best pool size did not qualify")
    why = (
        f"pool {size}: {tps:.0f} TPS, {tps / best_tps:.2f} of the best (pool {best}, {best_tps:.0f} TPS), "
        f"p99 {_ms(p99)} (best {_ms(best_p99)}); within {tolerance:.0%} of the best TPS, p99 <= "
        f"{p99_factor:g} x the best's"
    )
    if rejected:
        why += "; smaller: " + ", ".join(rejected)
    return KneeResult(size, tps, p99, why, best, best_tps, best_p99)


def _median_point(points: Sequence[SweepSample]) -> tuple[float, float | None]:
    p99s = [float(p.p99_ms) for p in points if p.p99_ms is not None]
    return float(statistics.median(p.tps for p in points)), statistics.median(p99s) if p99s else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def pool_line(pool: int) -> str:
    """The inventory line the sweep advises for the swept PgBouncer host.

    >>> pool_line(8)
    'pgbouncer_default_pool_size: 8'
    """
    return f"{POOL_VARIABLE}: {pool}"


def pin_pool(topology: Topology, host: str, pool: int) -> Plan:
    """The plan with ``host``'s ``pgbouncer_default_pool_size`` pinned to ``pool`` (what the line gives).

    The sizing validates the pinned pool against the same budget (SizingError if it does not fit), and
    the rest follows from it: reserve, min pool, max_db_connections, the PostgreSQL budget's line.

    >>> from toolkit.domain.models import DatabaseCapacity, PgBouncerHost, AppNode
    >>> topo = Topology(DatabaseCapacity(100, 2), (PgBouncerHost("pgb", ("app",), ("app",)),),
    ...                 (AppNode("web", workers=200),))
    >>> pgb = pin_pool(topo, "pgb", 8).pgbouncer[0]
    >>> [pgb.value(s) for s in ("default_pool_size", "reserve_pool_size", "max_db_connections")]
    [8, 2, 10]
    >>> pin_pool(topo, "pgb", 95)
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.SizingError: pgbouncer host pgb: pgbouncer_default_pool_size 95 exceeds ...
    """
    if host not in {h.name for h in topology.pgbouncers}:
        raise ValueError(f"no PgBouncer host {host} in the topology")
    hosts = tuple(
        replace(h, overrides=replace(h.overrides, default_pool_size=pool)) if h.name == host else h
        for h in topology.pgbouncers
    )
    return plan(replace(topology, pgbouncers=hosts))


# --- rounds of the sweep (``calibrate --sweep --rounds N``) -------------------------------------------

# More rounds than this is a benchmark, not a calibration (bench/ runs those).
MAX_ROUNDS = 10


def round_order(sizes: Sequence[int], round_number: int) -> tuple[int, ...]:
    """The order round ``round_number`` (from 1) runs the sizes in: odd rounds as given, even reversed.

    Interleaved so that a drift in the machine's load over the sweep does not favour one end of the list.

    >>> round_order([2, 8, 32], 1), round_order([2, 8, 32], 2), round_order([2, 8, 32], 3)
    ((2, 8, 32), (32, 8, 2), (2, 8, 32))
    >>> round_order([2, 8], 0)
    Traceback (most recent call last):
    ...
    ValueError: round 0: rounds are numbered from 1
    """
    if round_number < 1:
        raise ValueError(f"round {round_number}: rounds are numbered from 1")
    return tuple(sizes) if round_number % 2 else tuple(reversed(sizes))


def sweep_schedule(sizes: Sequence[int], rounds: int) -> tuple[tuple[int, int], ...]:
    """Every (round, size) a sweep of ``rounds`` rounds runs, in the order it runs them.

    >>> sweep_schedule([2, 8], 2)
    ((1, 2), (1, 8), (2, 8), (2, 2))
    """
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be from 1 to {MAX_ROUNDS}, got {rounds}")
    return tuple((r, size) for r in range(1, rounds + 1) for size in round_order(sizes, r))


@dataclass(frozen=True)
class SizeSummary:
    """One pool size over the rounds of a sweep: the medians the knee reads and the TPS spread."""

    pool_size: int
    rounds: int
    tps: float
    p99_ms: float | None
    tps_min: float
    tps_max: float


def summarize(points: Iterable[SweepSample]) -> tuple[SizeSummary, ...]:
    """Per pool size (ascending): how many points, the median TPS and p99 (as ``knee``), the min and max TPS.

    >>> from types import SimpleNamespace as P
    >>> runs = ((900, 12.0), (1200, 9.0), (1000, None))
    >>> (s,) = summarize([P(pool_size=8, tps=t, p99_ms=p) for t, p in runs])
    >>> s.rounds, s.tps, s.p99_ms, s.tps_min, s.tps_max
    (3, 1000.0, 10.5, 900.0, 1200.0)
    """
    by_size: dict[int, list[SweepSample]] = {}
    for pt in points:
        by_size.setdefault(pt.pool_size, []).append(pt)
    out = []
    for size in sorted(by_size):
        pts = by_size[size]
        tps, p99 = _median_point(pts)
        low, high = float(min(p.tps for p in pts)), float(max(p.tps for p in pts))
        out.append(SizeSummary(size, len(pts), tps, p99, low, high))
    return tuple(out)

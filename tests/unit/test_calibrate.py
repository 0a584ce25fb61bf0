"""Calibration math on hand-built SHOW STATS rows: rates, times, hold factor, Little's law, edge cases."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.domain import pgbouncer_rows as show
from toolkit.domain.calibrate import (
    PoolMeasure,
    database_hold_factor,
    inventory_hold_factor,
    knee,
    measure,
    pin_pool,
    pool_line,
)
from toolkit.domain.errors import SizingError
from toolkit.domain.models import AppNode, DatabaseCapacity, PgBouncerHost, Topology
from toolkit.domain.pgbouncer_rows import StatsRow, Version
from toolkit.domain.sizing import plan


def row(db: str, xacts: int, queries: int, xact_us: int, query_us: int, **extra: Any) -> StatsRow:
    """One SHOW STATS row with the 1.18 column names (and the avg_* columns, which are ignored)."""
    columns = {
        "database": db,
        "total_xact_count": xacts,
        "total_query_count": queries,
        "total_received": 0,
        "total_sent": 0,
        "total_xact_time": xact_us,
        "total_query_time": query_us,
        "total_wait_time": 0,
        "avg_xact_time": 999,
        "avg_query_time": 999,
        **extra,
    }
    (parsed,) = show.stats(list(columns), [list(columns.values())], Version(1, 18, 0))
    return parsed


# (case, before, after, window, rate, avg_xact_ms, avg_query_ms, queries_per_xact, hold, in_use)
CASES = [
    # Django-like: BEGIN; 4 SELECT; UPDATE; COMMIT -> 7 queries per transaction, 2 ms of 7 ms in queries.
    ("django-like", (0, 0, 0, 0), (300, 2100, 2_100_000, 600_000), 3.0, 100.0, 7.0, 2 / 7, 7.0, 3.5, 0.7),
    # Autocommit statements: one query per transaction, xact time = query time.
    ("autocommit", (10, 10, 50, 50), (1010, 1010, 500_050, 500_050), 2.0, 500.0, 0.5, 0.5, 1.0, 1.0, 0.25),
    # Busy: 16 connections in use on average over a 4 s window.
    ("busy", (5, 5, 5, 5), (8005, 16005, 64_000_005, 16_000_005), 4.0, 2000.0, 8.0, 1.0, 2.0, 4.0, 16.0),
]


@pytest.mark.parametrize(
    ("before", "after", "window", "rate", "xact_ms", "query_ms", "qpx", "hold", "in_use"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_measure_derives_every_figure(
    before: tuple[int, int, int, int],
    after: tuple[int, int, int, int],
    window: float,
    rate: float,
    xact_ms: float,
    query_ms: float,
    qpx: float,
    hold: float,
    in_use: float,
) -> None:
    (m,) = measure("pgb1", [row("app", *before)], [row("app", *after)], window)
    assert m.status == "ok"
    assert m.xact_rate == pytest.approx(rate)
    assert m.avg_xact_ms == pytest.approx(xact_ms)
    assert m.avg_query_ms == pytest.approx(query_ms)
    assert m.queries_per_xact == pytest.approx(qpx)
    assert m.hold_factor == pytest.approx(hold)
    # Little's law and the per-transaction formula agree.
    assert m.in_use == pytest.approx(in_use)
    assert m.in_use == pytest.approx(m.xact_rate * m.avg_xact_ms / 1000)
    assert m.hold_factor == pytest.approx(m.avg_xact_ms / (m.avg_query_ms * m.queries_per_xact))


def test_zero_traffic_window_says_so() -> None:
    same = row("app", 7, 13, 5_966_380, 5_975_300)
    (m,) = measure("pgb1", [same], [same], 3.0)
    assert (m.status, m.note) == ("idle", "no transactions in the window")
    assert m.avg_xact_ms is None and m.avg_query_ms is None and m.queries_per_xact is None
    assert m.hold_factor is None and m.xact_rate == 0.0 and m.in_use == 0.0
    assert database_hold_factor([m]) is None


def test_counters_reset_between_samples_give_no_figures() -> None:
    (m,) = measure("pgb1", [row("app", 9000, 9000, 10**9, 10**9)], [row("app", 40, 40, 1000, 900)], 3.0)
    assert m.status == "reset"
    assert "restarted" in m.note
    assert m.hold_factor is None and m.xacts == 0
    assert database_hold_factor([m]) is None


def test_new_pool_is_measured_from_zero_and_admin_db_is_skipped() -> None:
    after = [row("pgbouncer", 500, 500, 0, 0), row("new", 10, 20, 40_000, 20_000)]
    (m,) = measure("pgb1", [row("pgbouncer", 100, 100, 0, 0)], after, 1.0)
    assert (m.database, m.xacts, m.hold_factor) == ("new", 10, 2.0)


def test_unknown_columns_are_ignored_and_no_query_time_gives_no_factor() -> None:
    (m,) = measure("pgb1", [], [row("app", 4, 0, 8000, 0, total_new_thing=1)], 1.0)
    assert m.status == "ok" and m.queries == 0 and m.hold_factor is None


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError, match="above 0"):
        measure("pgb1", [], [], 0)


def test_database_hold_factor_weighs_pools_by_time() -> None:
    heavy = PoolMeasure("a", "app", 1.0, "ok", 100, 100, 900_000, 300_000)  # factor 3
    light = PoolMeasure("b", "app", 1.0, "ok", 100, 100, 100_000, 100_000)  # factor 1
    idle = PoolMeasure("b", "other", 1.0, "idle")
    assert database_hold_factor([heavy, light, idle]) == pytest.approx(1_000_000 / 400_000)


@pytest.mark.parametrize(
    ("measured", "written"), [(0.4, 1.0), (1.0, 1.0), (1.01, 1.1), (3.5, 3.5), (4.96, 5.0)]
)
def test_inventory_value_rounds_up_and_is_at_least_one(measured: float, written: float) -> None:
    assert inventory_hold_factor(measured) == written


def test_measured_factor_feeds_the_sizing() -> None:
    topo = Topology(
        database=DatabaseCapacity(max_connections=100, cores=2),
        pgbouncers=(PgBouncerHost("pgb", databases=("app",), users=("app",)),),
    )
    calibrated = replace(topo, database=replace(topo.database, hold_factor=inventory_hold_factor(3.04)))
    assert plan(calibrated).budget.active_target == 13  # ceil(4 x 3.1)
    assert plan(calibrated).pgbouncer[0].value("default_pool_size") == 13


# --- the sweep's knee and the inventory line that gives it ------------------------------------------


@dataclass(frozen=True)
class Pt:
    """A sweep point as the knee reads it (pool_size, tps, p99_ms)."""

    pool_size: int
    tps: float
    p99_ms: float | None = 10.0


def pts(tps: dict[int, float], p99: dict[int, float | None] | None = None) -> list[Pt]:
    return [Pt(s, t, (p99 or {}).get(s, 10.0)) for s, t in tps.items()]


@pytest.mark.parametrize(
    ("tps", "expected"),
    [
        # The measured TPC-B shape (FACTS): 16 is best, 8 is 4.5% below it -> 8.
        ({2: 1388, 4: 2021, 8: 2276, 16: 2384, 32: 2261, 64: 1918}, 8),
        # Django-like: 32 best, 16 is 11% below -> 32.
        ({2: 1406, 4: 2029, 8: 2489, 16: 2758, 32: 3116, 64: 2626}, 32),
        # Flat: every size within 5% -> the smallest.
        ({4: 1000, 8: 990, 16: 1001}, 4),
        # Exactly 95% of the best counts as within.
        ({4: 95, 8: 100}, 4),
        ({4: 94.9, 8: 100}, 8),
        # Noisy, not monotone: a dip at 8 does not hide 4, a spike at 64 is the best.
        ({2: 500, 4: 960, 8: 700, 16: 990, 64: 1000}, 4),
        ({2: 500, 4: 800, 8: 700, 16: 850, 64: 1000}, 64),
    ],
)
def test_knee_is_the_smallest_size_within_5_percent_of_the_best(tps: dict[int, float], expected: int) -> None:
    k = knee(pts(tps))
    assert k.pool_size == expected
    assert k.throughput == tps[expected]
    assert k.best_throughput == max(tps.values())


def test_all_equal_gives_the_smallest_and_the_best_is_the_smallest_of_the_tie() -> None:
    k = knee(pts({32: 500, 8: 500, 16: 500}))
    assert (k.pool_size, k.best_pool_size) == (8, 8)
    assert k.reason.startswith("pool 8: 500 TPS, 1.00 of the best (pool 8, 500 TPS), p99 10.0 ms")
    assert "smaller:" not in k.reason


def test_a_tie_on_throughput_takes_the_lower_p99_as_the_best() -> None:
    # 16 and 32 tie on TPS; 32's p99 is lower, so it is the reference: 16's 30 ms > 1.2 x 20 ms.
    k = knee(pts({16: 1000, 32: 1000}, {16: 30.0, 32: 20.0}))
    assert (k.pool_size, k.best_pool_size, k.best_p99_ms) == (32, 32, 20.0)


@pytest.mark.parametrize(
    ("p99", "expected"),
    [
        ({4: 12.0, 8: 11.0, 16: 10.0}, 4),  # 12 <= 1.2 x 10: within
        ({4: 12.1, 8: 11.0, 16: 10.0}, 8),  # 4's tail is too long: the next size
        ({4: 50.0, 8: 40.0, 16: 10.0}, 16),  # only the best's own p99 qualifies
        ({4: None, 8: 11.0, 16: 10.0}, 8),  # no latency log at 4: it cannot show its tail
        ({4: None, 8: None, 16: None}, 4),  # no p99 anywhere: throughput alone decides
    ],
)
def test_a_size_within_the_throughput_but_with_a_long_tail_is_passed_over(
    p99: dict[int, float | None], expected: int
) -> None:
    k = knee(pts({4: 980, 8: 990, 16: 1000}, p99))
    assert k.pool_size == expected


def test_the_reason_names_the_best_and_why_smaller_sizes_lost() -> None:
    k = knee(pts({2: 500, 4: 990, 8: 1000}, {2: 10.0, 4: 30.0, 8: 10.0}))
    assert k.pool_size == 8
    assert k.reason == (
        "pool 8: 1000 TPS, 1.00 of the best (pool 8, 1000 TPS), p99 10.0 ms (best 10.0 ms); within 5% of "
        "the best TPS, p99 <= 1.2 x the best's; smaller: 2 (0.50 of the best TPS), "
        "4 (p99 30.0 ms > 1.2 x 10.0 ms)"
    )


def test_rounds_of_one_size_count_as_their_median() -> None:
    # Three rounds at 4: 700, 960, 980 -> median 960, within 5% of 16's median 1000.
    rounds = [Pt(4, 700), Pt(4, 960), Pt(4, 980), Pt(16, 1000), Pt(16, 900), Pt(16, 1010)]
    k = knee(rounds)
    assert (k.pool_size, k.throughput, k.best_throughput) == (4, 960, 1000)


def test_tolerance_and_p99_factor_are_parameters() -> None:
    tps = {4: 900, 16: 1000}
    assert knee(pts(tps)).pool_size == 16
    assert knee(pts(tps), tolerance=0.1).pool_size == 4
    assert knee(pts(tps, {4: 14.0, 16: 10.0}), tolerance=0.1).pool_size == 16
    assert knee(pts(tps, {4: 14.0, 16: 10.0}), tolerance=0.1, p99_factor=1.5).pool_size == 4


def test_the_sweeps_own_points_are_read_by_the_knee() -> None:
    from toolkit.adapters.pgbench import Result, SweepPoint  # noqa: PLC0415 - the adapter's shape

    points = [SweepPoint(s, Result(t, 1, 0, 0, 1.0, 9.0, 0)) for s, t in ((2, 50.0), (8, 99.0), (16, 100.0))]
    assert knee(points).pool_size == 8


@pytest.mark.parametrize(
    ("points", "match"),
    [
        ([], "no pool size"),
        ([Pt(4, 0.0), Pt(8, 0.0)], "no pool size of the sweep ran a transaction"),
        ([Pt(0, 10.0)], "a pool size must be >= 1"),
        ([Pt(4, math.nan)], "finite"),
        ([Pt(4, 10.0, -1.0)], "finite and >= 0"),
    ],
)
def test_a_sweep_without_an_answer_is_an_error(points: list[Pt], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        knee(points)


@given(
    st.dictionaries(st.integers(1, 200), st.tuples(st.floats(1, 1e5), st.floats(0.1, 1e4)), min_size=1),
)
def test_the_knee_is_within_both_bounds_and_nothing_smaller_is(sweep: dict[int, tuple[float, float]]) -> None:
    k = knee([Pt(s, t, p) for s, (t, p) in sweep.items()])
    best_tps = max(t for t, _ in sweep.values())
    assert k.best_throughput == best_tps
    best_p99 = k.best_p99_ms
    assert best_p99 is not None

    def qualifies(size: int) -> bool:
        t, p = sweep[size]
        return t >= 0.95 * best_tps and p <= 1.2 * best_p99

    assert qualifies(k.pool_size)
    assert not any(qualifies(s) for s in sweep if s < k.pool_size)


def _topo(clients: int = 200, processes: int = 1, dbs: int = 1, cores: int = 2) -> Topology:
    host = PgBouncerHost("pgb", tuple(f"db{i}" for i in range(dbs)), ("app",), processes=processes)
    return Topology(DatabaseCapacity(100, cores), (host,), (AppNode("web", workers=clients),))


def test_the_advice_is_one_inventory_line() -> None:
    assert pool_line(8) == "pgbouncer_default_pool_size: 8"


@pytest.mark.parametrize("pool", [1, 2, 4, 5, 8, 13, 16, 20, 32, 64, 72])
def test_the_pinned_pool_sets_the_pool_and_the_rest_of_the_plan_follows(pool: int) -> None:
    p = pin_pool(_topo(), "pgb", pool)
    pgb = p.pgbouncer[0]
    reserve = min(math.ceil(pool / 4), 91 - pool)
    assert pgb.value("default_pool_size") == pool
    assert pgb.value("reserve_pool_size") == reserve
    assert pgb.value("min_pool_size") == pool // 4
    assert pgb.value("max_db_connections") == pool + reserve
    # The PostgreSQL budget counts the pinned pool, not the computed one.
    assert p.budget.pgbouncer_server_connections == pool + reserve
    line = next(b for b in p.budget.lines if b.item == "pgbouncer pgb")
    assert line.value == pool + reserve


def test_a_pool_above_what_the_clients_can_use_is_still_pinned() -> None:
    # 10 clients: the computed plan gives 10; the line pins 16, as the sweep measured it.
    assert plan(_topo(clients=10)).pgbouncer[0].value("default_pool_size") == 10
    assert pin_pool(_topo(clients=10), "pgb", 16).pgbouncer[0].value("default_pool_size") == 16


def test_a_pool_beyond_the_budget_is_refused_by_the_sizing() -> None:
    with pytest.raises(SizingError, match="exceeds the budget"):
        pin_pool(_topo(processes=2, dbs=2), "pgb", 23)  # 91 usable // 4 pools = 22 < 23


def test_pinning_an_unknown_host_is_an_error() -> None:
    with pytest.raises(ValueError, match="no PgBouncer host nope"):
        pin_pool(_topo(), "nope", 8)

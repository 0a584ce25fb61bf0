"""Calibration math on hand-built SHOW STATS rows: rates, times, hold factor, Little's law, edge cases."""

from __future__ import annotations

from dataclasses import replace
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
    values_for_pool,
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


# --- the sweep's knee and the inventory values that reproduce it -------------------------------------


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
    ],
)
def test_knee_is_the_smallest_size_within_5_percent_of_the_best(tps: dict[int, float], expected: int) -> None:
    assert knee(tps) == expected


def test_knee_of_an_empty_sweep_is_an_error() -> None:
    with pytest.raises(ValueError, match="no pool size"):
        knee({})


@given(st.dictionaries(st.integers(1, 200), st.floats(1, 1e5), min_size=1))
def test_knee_is_never_far_below_the_best_and_nothing_smaller_qualifies(tps: dict[int, float]) -> None:
    k = knee(tps)
    best = max(tps.values())
    assert tps[k] >= 0.95 * best
    assert all(tps[s] < 0.95 * best for s in tps if s < k)


def _topo(clients: int = 200, processes: int = 1, dbs: int = 1, cores: int = 2) -> Topology:
    host = PgBouncerHost("pgb", tuple(f"db{i}" for i in range(dbs)), ("app",), processes=processes)
    return Topology(DatabaseCapacity(100, cores), (host,), (AppNode("web", workers=clients),))


@pytest.mark.parametrize("pool", [1, 2, 4, 5, 8, 13, 16, 20, 32, 64, 91])
def test_values_make_the_sizing_give_the_knee(pool: int) -> None:
    topo = _topo()
    values, p = values_for_pool(topo, "pgb", pool)
    assert p.pgbouncer[0].value("default_pool_size") == pool
    if "database_hold_factor" in values:
        again = replace(topo, database=replace(topo.database, hold_factor=values["database_hold_factor"]))
        assert plan(again).pgbouncer[0].value("default_pool_size") == pool
        # The smallest such factor: 0.1 less gives a smaller pool.
        factor = values["database_hold_factor"]
        if factor > 0.1:
            lower = replace(topo, database=replace(topo.database, hold_factor=factor - 0.1))
            assert plan(lower).pgbouncer[0].value("default_pool_size") < pool


def test_a_pool_above_what_the_clients_can_use_is_pinned_not_reached_by_the_factor() -> None:
    # 10 clients: no hold factor makes the plan give more than 10, so the size is pinned.
    values, p = values_for_pool(_topo(clients=10), "pgb", 16)
    assert values == {"pgbouncer_default_pool_size": 16}
    assert p.pgbouncer[0].value("default_pool_size") == 16


def test_the_factor_accounts_for_every_pool_sharing_the_target() -> None:
    # 2 processes x 2 databases = 4 pools share the target: pool 8 each needs a target of 29..32.
    values, p = values_for_pool(_topo(processes=2, dbs=2), "pgb", 8)
    assert values == {"database_hold_factor": 7.1}  # ceil(4 x 7.1) = 29 -> ceil(29 / 4) = 8
    assert p.pgbouncer[0].value("default_pool_size") == 8


def test_a_pool_beyond_the_budget_is_refused_by_the_sizing() -> None:
    with pytest.raises(SizingError, match="exceeds the budget"):
        values_for_pool(_topo(processes=2, dbs=2), "pgb", 23)  # 91 usable // 4 pools = 22 < 23

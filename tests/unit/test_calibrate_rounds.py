"""The sweep's rounds: the order each round runs the sizes in, and the per-size summary the table shows."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.domain.calibrate import MAX_ROUNDS, knee, round_order, summarize, sweep_schedule


@dataclass(frozen=True)
class Pt:
    pool_size: int
    tps: float
    p99_ms: float | None = 10.0


def test_odd_rounds_run_the_sizes_as_given_and_even_rounds_reversed() -> None:
    sizes = [2, 4, 8, 16]
    assert [round_order(sizes, r) for r in (1, 2, 3, 4)] == [
        (2, 4, 8, 16),
        (16, 8, 4, 2),
        (2, 4, 8, 16),
        (16, 8, 4, 2),
    ]


@given(st.lists(st.integers(1, 500), min_size=1, max_size=8, unique=True), st.integers(1, MAX_ROUNDS))
def test_the_schedule_runs_every_size_once_per_round(sizes: list[int], rounds: int) -> None:
    schedule = sweep_schedule(sizes, rounds)
    assert len(schedule) == len(sizes) * rounds
    for r in range(1, rounds + 1):
        assert sorted(s for k, s in schedule if k == r) == sorted(sizes)
    # Interleaved: with an even number of rounds, every size sits at each position equally often, so the
    # mean position (a drift in the load over the sweep) is the same for all sizes.
    if rounds % 2 == 0:
        where = {s: sum(i for i, (_, x) in enumerate(schedule) if x == s) for s in sizes}
        assert len(set(where.values())) == 1


@pytest.mark.parametrize("rounds", [0, MAX_ROUNDS + 1])
def test_rounds_outside_1_to_10_are_refused(rounds: int) -> None:
    with pytest.raises(ValueError, match="rounds must be from 1 to 10"):
        sweep_schedule([2, 4], rounds)


def test_the_knee_over_rounds_reads_medians_where_one_round_would_mislead() -> None:
    first = [Pt(8, 1700.0), Pt(16, 2000.0)]  # one pass: 8 is 0.85 of 16, the knee would be 16
    assert knee(first).pool_size == 16
    rounds = [*first, Pt(16, 1990.0), Pt(8, 2000.0), Pt(8, 2010.0), Pt(16, 1950.0)]
    assert knee(rounds).pool_size == 8
    (eight, sixteen) = summarize(rounds)
    assert (eight.rounds, eight.tps, eight.tps_min, eight.tps_max) == (3, 2000.0, 1700.0, 2010.0)
    assert (sixteen.pool_size, sixteen.tps) == (16, 1990.0)


def test_the_summary_is_ascending_and_a_size_without_p99_has_none() -> None:
    summary = summarize([Pt(16, 5.0, None), Pt(4, 3.0), Pt(16, 7.0, None)])
    assert [(s.pool_size, s.rounds, s.tps, s.p99_ms) for s in summary] == [
        (4, 1, 3.0, 10.0),
        (16, 2, 6.0, None),
    ]

"""The runbooks' number flags: only plain ASCII decimals within bounds; everything else is a usage error
(RunbookUsageError, exit 64) with one line naming the flag and the value."""

from __future__ import annotations

import pytest

from toolkit.domain.runbooks.base import RunbookUsageError, parse_count, parse_duration, parse_number

HOSTILE = [
    "nan",
    "NaN",
    "inf",
    "-inf",
    "Infinity",
    "1e999",
    "1e3",
    "-1",
    "-0",
    "0x10",
    "1_000",
    "٥",  # ARABIC-INDIC DIGIT FIVE: int() and float() take it
    "５",  # FULLWIDTH DIGIT FIVE
    "1.2.3",
    "",
    " ",
    "5 5",
    "9" * 5000,  # int() refuses beyond 4300 digits with a ValueError: never reached
]


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_numbers_are_refused(value: str) -> None:
    with pytest.raises(RunbookUsageError) as caught:
        parse_number(value, "--timeout", above=0, high=3600)
    assert "\n" not in str(caught.value) and str(caught.value).startswith("--timeout: ")


@pytest.mark.parametrize("value", [*HOSTILE, "5.0", "2.5"])
def test_hostile_counts_are_refused(value: str) -> None:
    with pytest.raises(RunbookUsageError, match=r"^--max: "):
        parse_count(value, "--max", low=1, high=100_000)


@pytest.mark.parametrize("value", [*HOSTILE, "5x", "5 minutes", "٥m", "1e3s", "infs", "nans"])
def test_hostile_durations_are_refused(value: str) -> None:
    with pytest.raises(RunbookUsageError, match=r"^--older-than: "):
        parse_duration(value, "--older-than", above=0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "must be above 0 s"),
        ("0s", "must be above 0 s"),
        ("0ms", "must be above 0 s"),
        ("31d", "is not a duration"),
        ("721h", "must be between 0 s and 30 days"),
        ("999999999999h", "must be between 0 s and 30 days"),
    ],
)
def test_older_than_must_be_above_zero_and_not_absurd(value: str, message: str) -> None:
    with pytest.raises(RunbookUsageError, match=message):
        parse_duration(value, "--older-than", above=0)


def test_bounds_of_numbers_and_counts() -> None:
    with pytest.raises(RunbookUsageError, match="must be above 0"):
        parse_number("0", "--rate", above=0, high=1000)
    with pytest.raises(RunbookUsageError, match="must be between 0 and 3600"):
        parse_number("3601", "--timeout", above=0, high=3600)
    with pytest.raises(RunbookUsageError, match="must be between 1 and 100000"):
        parse_count("100001", "--max", low=1, high=100_000)
    with pytest.raises(RunbookUsageError, match="must be between 1 and 100000"):
        parse_count("0", "--max", low=1, high=100_000)


@pytest.mark.parametrize(
    ("value", "seconds"), [("30s", 30.0), ("5m", 300.0), ("1h", 3600.0), ("250ms", 0.25), (" 2.5 ", 2.5)]
)
def test_good_durations(value: str, seconds: float) -> None:
    assert parse_duration(value, "--older-than", above=0) == seconds


def test_good_numbers_and_counts() -> None:
    assert parse_number("2.5", "--timeout", above=0, high=3600) == 2.5
    assert parse_count("50", "--max", low=1, high=100_000) == 50

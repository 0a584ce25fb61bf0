"""The one coercer of live values to integers (toolkit/domain/numbers.py): SHOW, INFO, pg_settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from toolkit.domain.numbers import as_int


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (42, 42),
        ("42", 42),
        (" 42\n", 42),
        ("-3", -3),
        (b"17", 17),
        (5.0, 5),
        (Decimal("123456789012"), 123456789012),
        (0, 0),
        ("0", 0),
    ],
)
def test_integers_in_any_driver_shape_are_read(value: object, expected: int) -> None:
    assert as_int(value) == expected
    assert as_int(value, None) == expected


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "  ",
        "1.5",
        1.5,
        Decimal("1.5"),
        Decimal("NaN"),
        float("nan"),
        float("inf"),
        "12MB",
        "٣",
        True,
        False,
        [1],
        "1e3",
    ],
)
def test_anything_else_gives_the_default(value: object) -> None:
    assert as_int(value) == 0
    assert as_int(value, None) is None
    assert as_int(value, -1) == -1


def test_a_value_too_long_for_a_counter_is_not_read() -> None:
    assert as_int("9" * 40, None) is None

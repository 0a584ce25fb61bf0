"""Number flags (``--timeout``, ``--window``, ``--count`` ...): plain ASCII decimals within sane bounds.

Python's float() and int() accept what no operator means on a command line: ``nan``, ``inf``,
``1e400`` (infinity), ``-0``, ``1_000`` and digits of other scripts (``float("١٢")`` is 12.0). Each
factory here returns a typer ``parser=`` that takes the raw text and refuses all of those with a
usage error (:class:`~toolkit.domain.errors.UsageError`, exit 64) naming the flag and the bounds.
Defaults arrive already as numbers and pass through.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

import typer

from toolkit.domain.errors import UsageError

_DECIMAL = re.compile(r"\A[0-9]{1,12}(?:\.[0-9]{1,9})?\Z")  # ASCII: [0-9] never matches other scripts
_INTEGER = re.compile(r"\A[0-9]{1,18}\Z")
HOUR = 3600.0


def _shown(text: str) -> str:
    return repr(text if len(text) <= 24 else text[:24] + "...")


def seconds(flag: str, high: float = HOUR) -> Callable[[str | float], float]:
    """A parser of the seconds of ``flag``: above 0 and at most ``high``.

    >>> seconds("--timeout")("2.5"), seconds("--timeout")(3.0)
    (2.5, 3.0)
    >>> seconds("--timeout")("nan")
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.UsageError: Invalid value for '--timeout': must be a number of seconds above 0 ...
    """

    def parse(value: str | float) -> float:
        if (isinstance(value, int | float) and not isinstance(value, bool)) or (
            isinstance(value, str) and _DECIMAL.match(value)
        ):
            number = float(value)
        else:
            number = math.nan
        if not (0 < number <= high):
            raise UsageError(
                f"must be a number of seconds above 0 and at most {high:g}, written with ASCII digits "
                f"(like 2 or 0.5; no sign, exponent, nan or inf), got {_shown(str(value))}",
                flag,
            )
        return number

    return parse


def count(flag: str, low: int, high: int) -> Callable[[str | int], int]:
    """A parser of the whole number of ``flag``, in [``low``, ``high``].

    >>> count("--top", 0, 10)("7"), count("--top", 1, 5)(3)
    (7, 3)
    """

    def parse(value: str | int) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and _INTEGER.match(value):
            number = int(value)
        if number is None or not (low <= number <= high):
            raise UsageError(
                f"must be a whole number from {low} to {high}, written with ASCII digits, "
                f"got {_shown(str(value))}",
                flag,
            )
        return number

    return parse


def seconds_option(flag: str, help_text: str, high: float = HOUR) -> Any:
    """A ``typer.Option`` of seconds parsed by :func:`seconds`."""
    return typer.Option(flag, help=help_text, parser=seconds(flag, high), metavar="SECONDS")


def count_option(flag: str, help_text: str, low: int, high: int) -> Any:
    """A ``typer.Option`` of a whole number parsed by :func:`count`."""
    return typer.Option(flag, help=help_text, parser=count(flag, low, high), metavar="N")

"""The shapes every runbook shares: its parameters, its plan, and the actions in the plan."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.domain.errors import UsageError


class RunbookUsageError(UsageError):
    """A runbook was asked with a bad or missing flag, an unknown name or target (exit 64).

    A refusal because of what the runbook read from the live systems is a
    :class:`toolkit.domain.errors.RefusedError` instead (exit 2, nothing changed).
    """


class ActionSkipped(Exception):
    """The target changed since the plan (another session on the planned pid): nothing was done.

    The executor records it as ``skipped: <reason>`` in the output and the audit log; it is not a
    failure, since what the plan meant to act on is no longer there.
    """


@dataclass(frozen=True)
class RunbookInfo:
    """What ``runbook list`` and ``runbook show`` print."""

    name: str
    title: str
    fixes: tuple[str, ...] = ()  # finding ids this runbook remedies
    params: tuple[str, ...] = ()  # the command-line options it takes
    confirm_database: bool = False  # interactive confirmation must type the database name
    manual: bool = False  # a documented procedure the toolkit does not run


@dataclass(frozen=True)
class Action:
    """One thing the runbook would do to one target, and why."""

    target: str
    kind: str
    args: Mapping[str, Any] = field(default_factory=dict)
    why: str = ""
    # What must still hold when acting (the planned session's backend_start, query_start, ...): the
    # action re-checks it in the same statement and is skipped when it no longer holds.
    guard: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the plan table."""
        args = ", ".join(f"{k}={v}" for k, v in self.args.items())
        return f"{self.kind}({args})" if args else self.kind


@dataclass(frozen=True)
class RunbookPlan:
    """What a runbook would do; empty actions mean nothing needs doing."""

    runbook: str
    actions: tuple[Action, ...]
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output."""
        return {
            "runbook": self.runbook,
            "actions": [
                {
                    "target": a.target,
                    "action": a.kind,
                    "parameters": dict(a.args),
                    "why": a.why,
                    **({"guard": dict(a.guard)} if a.guard else {}),
                }
                for a in self.actions
            ],
            "notes": list(self.notes),
        }


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
# ASCII digits only: Python's \d, int() and float() also take other scripts' digits ("٥"), and float()
# takes "nan", "inf" and "1e999". Eighteen characters bound the work before any conversion.
_DECIMAL = re.compile(r"([0-9]{1,12})(?:\.([0-9]{1,6}))?", re.ASCII)
_DURATION = re.compile(r"\s*([0-9.]{1,18})\s*(ms|s|min|m|h)?\s*", re.ASCII)
DAY = 86400.0


def parse_number(
    text: str, option: str, *, above: float | None = None, low: float = 0.0, high: float
) -> float:
    """A plain decimal number of ASCII digits within [``low``, ``high``] (and > ``above`` if given).

    >>> parse_number("2.5", "--timeout", above=0, high=3600)
    2.5
    >>> parse_number("nan", "--timeout", above=0, high=3600)
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: --timeout: 'nan' is not a number such as 5 or 2.5
    """
    if not _DECIMAL.fullmatch(text.strip()):
        raise RunbookUsageError(f"{option}: {text!r} is not a number such as 5 or 2.5")
    return _bounded(float(text.strip()), text, option, above, low, high, "")


def parse_count(text: str, option: str, *, low: int, high: int) -> int:
    """A whole number of ASCII digits within [``low``, ``high``].

    >>> parse_count("50", "--max", low=1, high=10000)
    50
    >>> parse_count("٥٠", "--max", low=1, high=10000)
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: --max: '٥٠' is not a whole number such as 50
    """
    m = _DECIMAL.fullmatch(text.strip())
    if not m or m.group(2) is not None:
        raise RunbookUsageError(f"{option}: {text!r} is not a whole number such as 50")
    return int(_bounded(int(m.group(1)), text, option, None, low, high, ""))


def _bounded(
    value: float, text: str, option: str, above: float | None, low: float, high: float, unit: str
) -> float:
    if above is not None and value <= above:
        raise RunbookUsageError(f"{option}: {text!r} must be above {_show(above, unit)}")
    if value < low or value > high:
        raise RunbookUsageError(
            f"{option}: {text!r} must be between {_show(low, unit)} and {_show(high, unit)}"
        )
    return value


def _show(value: float, unit: str) -> str:
    """``value`` for a message: whole numbers without exponent, durations in days when whole days."""
    if unit and value >= DAY and value % DAY == 0:
        return f"{int(value // DAY)} days"
    number = str(int(value)) if value == int(value) else f"{value:g}"
    return f"{number}{unit}"


def parse_duration(text: str, option: str, *, above: float | None = None, high: float = 30 * DAY) -> float:
    """Seconds from ``30s``, ``5m``, ``1h``, ``250ms`` or a plain number of seconds, at most ``high``.

    >>> parse_duration("5m", "--older-than")
    300.0
    >>> parse_duration("-1s", "--older-than")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: --older-than: '-1s' is not a duration such as 30s, ...
    >>> parse_duration("0s", "--older-than", above=0)
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: --older-than: '0s' must be above 0 s
    """
    m = _DURATION.fullmatch(text)
    if not m or not _DECIMAL.fullmatch(m.group(1)):
        raise RunbookUsageError(f"{option}: {text!r} is not a duration such as 30s, 5m or 1h")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    return _bounded(seconds, text, option, above, 0.0, high, " s")

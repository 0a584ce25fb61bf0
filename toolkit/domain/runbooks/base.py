"""The shapes every runbook shares: its parameters, its plan, and the actions in the plan."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.domain.errors import ToolkitError


class RunbookError(ToolkitError):
    """A runbook was asked for something it must not do, or with bad parameters (exit 64)."""


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
                {"target": a.target, "action": a.kind, "parameters": dict(a.args), "why": a.why}
                for a in self.actions
            ],
            "notes": list(self.notes),
        }


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str, option: str) -> float:
    """Seconds from ``30s``, ``5m``, ``1h``, ``250ms`` or a plain number of seconds.

    >>> parse_duration("5m", "--older-than")
    300.0
    >>> parse_duration("-1s", "--older-than")
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookError: --older-than: '-1s' is not a duration such as 30s, 5m or 1h
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|min|m|h)?\s*", text)
    if not m:
        raise RunbookError(f"{option}: {text!r} is not a duration such as 30s, 5m or 1h")
    return float(m.group(1)) * _UNITS[m.group(2) or "s"]

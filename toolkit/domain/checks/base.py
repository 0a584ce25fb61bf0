"""What every check module shares: the catalogue entry type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckInfo:
    """A finding id, what it means in a line, and the runbook that fixes it."""

    id: str
    title: str
    runbook: str | None = None

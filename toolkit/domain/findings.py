"""Findings: what a check reports, with a stable dotted id, evidence and the remedy."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Severities map onto the exit codes (Nagios-compatible): the worst one wins."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @property
    def label(self) -> str:
        """Lower-case name for output."""
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One way the system departs from a healthy one."""

    id: str
    severity: Severity
    target: str
    summary: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    remedy: str = ""
    runbook: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output (the schema in docs/schema/doctor-v1.json)."""
        return {
            "id": self.id,
            "severity": self.severity.label,
            "target": self.target,
            "summary": self.summary,
            "evidence": dict(self.evidence),
            "remedy": self.remedy,
            "runbook": self.runbook,
        }


# CRITICAL outranks UNKNOWN: a problem found is worse news than a target that could not be checked.
_RANK = {Severity.OK: 0, Severity.WARNING: 1, Severity.UNKNOWN: 2, Severity.CRITICAL: 3}


def worst(findings: Iterable[Finding]) -> Severity:
    """The overall status: CRITICAL, else UNKNOWN, else WARNING, else OK.

    >>> worst([])
    <Severity.OK: 0>
    >>> f = lambda s: Finding("a.b", s, "t", "s")
    >>> worst([f(Severity.WARNING), f(Severity.UNKNOWN)])
    <Severity.UNKNOWN: 3>
    >>> worst([f(Severity.UNKNOWN), f(Severity.CRITICAL)])
    <Severity.CRITICAL: 2>
    """
    return max((f.severity for f in findings), key=_RANK.__getitem__, default=Severity.OK)

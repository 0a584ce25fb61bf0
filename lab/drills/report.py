"""Incident drills: what a drill claims, what it measured, and its verdict (pure).

A drill injects one of the seed failures into the lab's demo app under HTTP load, detects it with
doctor or an audit, remediates it, and measures before, during and after. Its report is a list of
claims, each with the figure that decides it: the drill passes only when every claim holds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SCHEMA = "toolkit.drill/v1"


@dataclass(frozen=True)
class Claim:
    """One thing the drill must show, whether it held, and the measured figure."""

    text: str
    ok: bool
    figure: str


@dataclass
class DrillReport:
    """Everything one drill measured, in the order it happened."""

    name: str
    title: str
    measurements: dict[str, dict[str, Any]] = field(default_factory=dict)
    detection: dict[str, Any] = field(default_factory=dict)
    remediation: dict[str, Any] = field(default_factory=dict)
    claims: list[Claim] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Every claim held and nothing failed on the way.

        >>> DrillReport("d", "t").ok
        False
        >>> DrillReport("d", "t", claims=[Claim("x", True, "1")]).ok
        True
        """
        return self.error is None and bool(self.claims) and all(c.ok for c in self.claims)

    def claim(self, text: str, ok: bool, figure: str) -> bool:
        """Record a claim; return whether it held."""
        self.claims.append(Claim(text, ok, figure))
        return ok

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "name": self.name,
            "title": self.title,
            "ok": self.ok,
            "error": self.error,
            "measurements": self.measurements,
            "detection": self.detection,
            "remediation": self.remediation,
            "claims": [{"text": c.text, "ok": c.ok, "figure": c.figure} for c in self.claims],
        }


def ratio(value: float, base: float) -> float:
    """value / base, 0 when the base is 0.

    >>> ratio(50, 200), ratio(3, 0)
    (0.25, 0.0)
    """
    return value / base if base else 0.0


def agreement(reads: list[str | None], expected: str) -> float:
    """The share of reads that returned the value last written.

    >>> agreement(["v", None, "v", "w"], "v")
    0.5
    >>> agreement([], "v")
    0.0
    """
    return sum(1 for r in reads if r == expected) / len(reads) if reads else 0.0

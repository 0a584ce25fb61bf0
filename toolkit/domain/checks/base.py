"""What every check module shares: the catalogue entry type."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.domain.findings import Finding, Severity
from toolkit.domain.snapshot import Snapshot


@dataclass(frozen=True)
class CheckInfo:
    """A finding id, what it means in a line, and the runbook that fixes it."""

    id: str
    title: str
    runbook: str | None = None


def unreachable(snap: Snapshot, kind: str, remedy: str, runbook: str | None = None) -> list[Finding]:
    """``<kind>.unreachable`` (UNKNOWN) for every target of ``kind`` doctor could not read."""
    return [
        Finding(
            f"{kind}.unreachable",
            Severity.UNKNOWN,
            f"{kind}@{t.address}",
            t.error or "unreachable",
            {"cause": t.cause, "elapsed_s": round(t.elapsed, 2)},
            remedy,
            runbook,
        )
        for t in snap.targets
        if t.kind == kind and not t.ok
    ]

"""Cache settings that go wrong across processes and nodes (placeholder)."""

from __future__ import annotations

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.findings import Finding
from toolkit.domain.snapshot import Snapshot

AREA = "cache"
CATALOG: tuple[CheckInfo, ...] = ()


def run(snapshot: Snapshot) -> list[Finding]:
    """Return the cache.* findings."""
    return []

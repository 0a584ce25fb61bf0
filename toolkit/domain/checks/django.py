"""Django settings that break under PgBouncer's transaction pooling or under ASGI (placeholder)."""

from __future__ import annotations

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.findings import Finding
from toolkit.domain.snapshot import Snapshot

AREA = "django"
CATALOG: tuple[CheckInfo, ...] = ()


def run(snapshot: Snapshot) -> list[Finding]:
    """Return the django.* findings."""
    return []

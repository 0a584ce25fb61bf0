"""Checks: pure functions from a :class:`Snapshot` to findings, grouped by area.

Every area module exposes ``CATALOG`` (its finding ids with a one-line title and the runbook that
fixes them, if any: the one place that says it) and ``run(snapshot) -> list[Finding]``. Ids are
stable and documented in docs/checks.md; a test keeps catalogue and docs in step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from toolkit.domain.checks import cache, capacity, django, pgbouncer, postgres, redis, topology
from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.findings import Finding
from toolkit.domain.snapshot import Snapshot

_MODULES = (capacity, pgbouncer, postgres, topology, django, cache, redis)


@dataclass(frozen=True)
class Area:
    """One group of checks."""

    name: str
    catalog: tuple[CheckInfo, ...]
    run: Callable[[Snapshot], list[Finding]]


def areas() -> Sequence[Area]:
    """Every area, in report order."""
    return [Area(m.AREA, m.CATALOG, m.run) for m in _MODULES]


def catalog() -> dict[str, CheckInfo]:
    """Every finding id the checks can report."""
    return {c.id: c for a in areas() for c in a.catalog}


def known_prefix(prefix: str) -> bool:
    """Whether ``--only PREFIX`` selects a finding id ("pgbouncer" or "pgbouncer.clients_waiting")."""
    return any(i == prefix or i.startswith(prefix.rstrip(".") + ".") for i in catalog())


def run_checks(snapshot: Snapshot, only: str | None = None) -> list[Finding]:
    """Run every check (or those under ``only``) and return their findings.

    Each finding names the runbook its catalogue entry names: the catalogue is the one source of which
    runbook fixes which finding (a unit test holds every runbook's ``fixes`` to it).
    """
    known = catalog()
    found: list[Finding] = []
    for area in areas():
        found.extend(
            replace(f, runbook=known[f.id].runbook) if f.id in known else f for f in area.run(snapshot)
        )
    if only:
        stem = only.rstrip(".")
        found = [f for f in found if f.id == stem or f.id.startswith(stem + ".")]
    return found

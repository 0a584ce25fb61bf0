"""Incident drills against the lab's demo app: inject, detect, remediate, verify (``toolkit lab drill``).

Each drill is a module with NAME, TITLE and ``run(lab, seconds) -> DrillReport``; the verdict logic
lives in :mod:`toolkit.domain.drills`.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from toolkit.domain.drills import DrillReport
from toolkit.drills import async_blocking, cache_divergence, orm_overfetch, pool_exhaustion
from toolkit.drills.lab import Lab

_MODULES: tuple[ModuleType, ...] = (pool_exhaustion, orm_overfetch, cache_divergence, async_blocking)
DRILLS: dict[str, tuple[str, Callable[[Lab, float], DrillReport]]] = {
    m.NAME: (m.TITLE, m.run) for m in _MODULES
}

"""Runbook execution: plan (pure, in toolkit.domain.runbooks), show, act with --yes, audit, verify.

Each runbook is a module (or, for the three one-database commands, an object) with INFO, plan(), act()
and verify() (see :class:`base.Runbook`).
"""

from __future__ import annotations

from toolkit.domain.runbooks.base import RunbookInfo, RunbookUsageError
from toolkit.runbooks import (
    cache_flush,
    cancel_long,
    end_bypass,
    pgbouncer_database,
    pgbouncer_max_client_conn,
    pgbouncer_pause,
    pgbouncer_reconnect,
    pgbouncer_reload,
    pgbouncer_resize,
    pgbouncer_resume,
    redis_idle_clients,
    redis_maxclients,
    snapshot,
    terminate_idle,
)
from toolkit.runbooks.base import Runbook

# Documented procedures the toolkit does not run (docs/runbooks/<name>.md).
MANUAL = (
    RunbookInfo(
        "pgbouncer-unresponsive",
        "PgBouncer does not answer: find out why, then restart it safely",
        fixes=("pgbouncer.unreachable",),
        manual=True,
    ),
)

_MODULES: tuple[Runbook, ...] = (
    terminate_idle,
    cancel_long,
    cache_flush,
    pgbouncer_pause,
    pgbouncer_resume,
    pgbouncer_reload,
    pgbouncer_reconnect,
    pgbouncer_resize,
    pgbouncer_database.KILL,
    pgbouncer_database.DISABLE,
    pgbouncer_database.ENABLE,
    snapshot,
    pgbouncer_max_client_conn,
    end_bypass,
    redis_maxclients,
    redis_idle_clients,
)


def runbooks() -> dict[str, Runbook]:
    """Every runbook the toolkit runs, by name."""
    return {m.INFO.name: m for m in _MODULES}


def infos() -> list[RunbookInfo]:
    """Every runbook, runnable or manual, for `runbook list`."""
    return sorted([m.INFO for m in _MODULES] + list(MANUAL), key=lambda i: i.name)


def find(name: str) -> Runbook:
    """The runbook called ``name``; a RunbookUsageError (exit 64) lists the known ones otherwise."""
    known = runbooks()
    if name in known:
        return known[name]
    manual = {i.name for i in MANUAL}
    if name in manual:
        raise RunbookUsageError(f"{name} is a manual procedure: read it with 'toolkit runbook show {name}'")
    raise RunbookUsageError(f"unknown runbook {name!r}; known: {', '.join(sorted(known) + sorted(manual))}")

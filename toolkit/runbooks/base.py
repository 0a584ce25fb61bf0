"""What every runbook module receives: the run's context and the options of the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolkit.adapters.inventory import InventoryData
from toolkit.adapters.secrets import Secrets
from toolkit.domain.models import Topology
from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.sessions import DEFAULT_MAX_SESSIONS
from toolkit.domain.targets import Endpoint


@dataclass(frozen=True)
class RunContext:
    """The inventory, where secrets come from, and limits for one run."""

    data: InventoryData
    topology: Topology
    endpoints: tuple[Endpoint, ...]
    secrets: Secrets
    timeout: float
    target: str | None  # --target: one inventory host, or None for all
    audit: Path
    # Writes the intent record of one action (runbook, action) to the audit log, fsynced, and returns
    # the function that writes its outcome. Set by the executor; :func:`audited` is how actions use it.
    intend: Callable[[str, Action], Callable[[str], None]] = lambda runbook, action: lambda result: None
    process: int | None = None  # --process: one PgBouncer process of the --target host, or None for all

    def selected(self, kind: str) -> list[Endpoint]:
        """Endpoints of ``kind`` that --target selects."""
        found = [e for e in self.endpoints if e.kind == kind]
        return [e for e in found if self.target in (None, e.name, e.address)]


@dataclass(frozen=True)
class RunOptions:
    """Every runbook parameter the command line can carry; each runbook reads the ones it takes."""

    older_than: float | None = None
    database: str | None = None
    application_name: str | None = None
    app_node: str | None = None
    grace: float = 5.0
    terminate: bool = False
    prefix: str | None = None
    key_prefix: str | None = None
    version: int | None = None
    bump_version: bool = False
    size: int | None = None
    rate: float = 10.0  # actions per second, at most
    output: str | None = None
    max_sessions: int = DEFAULT_MAX_SESSIONS  # --max: sessions one run may act on
    include_bypass: bool = False  # --include-bypass-roles
    include_toolkit: bool = False  # --include-toolkit-sessions
    max_client_conn: int | None = None  # --max-client-conn: pgbouncer-raise-max-client-conn
    role: str | None = None  # --role: end-bypass-sessions
    maxclients: int | None = None  # --maxclients: redis-raise-maxclients


class Runbook(Protocol):
    """A runbook module: its description, a planner, one action at a time, and a check of the effect."""

    INFO: RunbookInfo

    def plan(self, ctx: RunContext, opts: RunOptions) -> RunbookPlan: ...

    def act(self, ctx: RunContext, action: Action, opts: RunOptions) -> str: ...

    def verify(self, ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]: ...


def audited(ctx: RunContext, runbook: str, action: Action, do: Callable[[], str]) -> str:
    """Write the intent record, run ``do``, then write its outcome (the result, skipped or failed)."""
    finish = ctx.intend(runbook, action)
    try:
        result = do()
    except ActionSkipped as exc:
        finish(f"skipped: {exc}")
        raise
    except Exception as exc:
        finish(f"failed: {exc}")
        raise
    finish(result)
    return result

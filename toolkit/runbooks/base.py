"""What every runbook module receives: the run's context and the options of the command line."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from toolkit.adapters.inventory import InventoryData
from toolkit.adapters.secrets import Secrets
from toolkit.domain.models import Topology
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
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
    # Records one action in the audit log: (runbook, action, result). Set by the executor.
    record: Callable[[str, Action, str], None] = lambda runbook, action, result: None

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


class Runbook(Protocol):
    """A runbook module: its description, a planner, one action at a time, and a check of the effect."""

    INFO: RunbookInfo

    def plan(self, ctx: RunContext, opts: RunOptions) -> RunbookPlan: ...

    def act(self, ctx: RunContext, action: Action, opts: RunOptions) -> str: ...

    def verify(self, ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]: ...

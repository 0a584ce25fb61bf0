"""Run one runbook: plan, then (only when allowed) act with an audit record per action, then verify."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from toolkit.adapters import audit
from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.base import Action, RunbookPlan
from toolkit.runbooks.base import Runbook, RunContext, RunOptions


@dataclass
class Outcome:
    """What happened: the plan, each action's result, and the verification."""

    plan: RunbookPlan
    acted: bool = False
    results: list[tuple[Action, str]] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)
    verified: bool | None = None
    verification: str = ""

    @property
    def ok(self) -> bool:
        """Every action succeeded and the effect was verified (or nothing needed doing)."""
        return not self.failed and self.verified is not False


def with_audit(ctx: RunContext) -> RunContext:
    """A context whose ``record`` appends to the audit log."""

    def record(runbook: str, action: Action, result: str) -> None:
        audit.append(
            ctx.audit,
            target=action.target,
            action=action.kind,
            parameters=dict(action.args),
            result=result,
            runbook=runbook,
            detail=action.why,
        )

    return replace(ctx, record=record)


def act_and_verify(book: Runbook, ctx: RunContext, opts: RunOptions, plan: RunbookPlan) -> Outcome:
    """Carry out every action of ``plan``, audit each, then verify the effect."""
    ctx = with_audit(ctx)
    outcome = Outcome(plan, acted=True)
    for action in plan.actions:
        try:
            result = book.act(ctx, action, opts)
        except TargetError as exc:
            ctx.record(book.INFO.name, action, f"failed: {exc}")
            outcome.failed.append((action, str(exc)))
            continue
        ctx.record(book.INFO.name, action, result)
        outcome.results.append((action, result))
    outcome.verified, outcome.verification = book.verify(ctx, plan, opts)
    return outcome

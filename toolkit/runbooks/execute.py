"""Run one runbook: plan, then (only when allowed) act with an audit record per action, then verify.

Each action gets two audit records: its intent, written and fsynced before the action, and its outcome
after (the result, ``skipped: ...`` or ``failed: ...``). The log is checked to be a regular file before
the first action (:func:`toolkit.adapters.audit.check`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from toolkit.adapters import audit
from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookPlan
from toolkit.runbooks.base import Runbook, RunContext, RunOptions, audited


@dataclass
class Outcome:
    """What happened: the plan, each action's result, what was skipped, and the verification."""

    plan: RunbookPlan
    acted: bool = False
    results: list[tuple[Action, str]] = field(default_factory=list)
    failed: list[tuple[Action, str]] = field(default_factory=list)
    skipped: list[tuple[Action, str]] = field(default_factory=list)
    verified: bool | None = None
    verification: str = ""

    @property
    def ok(self) -> bool:
        """Every action succeeded or was skipped, and the effect was verified (or nothing needed doing)."""
        return not self.failed and self.verified is not False


def with_audit(ctx: RunContext) -> RunContext:
    """A context whose ``intend`` writes intent and outcome records to the audit log."""

    def intend(runbook: str, action: Action) -> Callable[[str], None]:
        record = audit.intent(
            ctx.audit,
            target=action.target,
            action=action.kind,
            parameters=dict(action.args),
            guard=dict(action.guard),
            runbook=runbook,
            detail=action.why,
        )

        def finish(result: str) -> None:
            audit.outcome(ctx.audit, record, result)

        return finish

    return replace(ctx, intend=intend)


def act_and_verify(book: Runbook, ctx: RunContext, opts: RunOptions, plan: RunbookPlan) -> Outcome:
    """Carry out every action of ``plan``, audit each, then verify the effect of those carried out."""
    audit.check(ctx.audit)
    ctx = with_audit(ctx)
    outcome = Outcome(plan, acted=True)
    for action in plan.actions:
        try:
            result = audited(ctx, book.INFO.name, action, partial(book.act, ctx, action, opts))
        except ActionSkipped as exc:
            outcome.skipped.append((action, str(exc)))
            continue
        except TargetError as exc:
            outcome.failed.append((action, str(exc)))
            continue
        outcome.results.append((action, result))
    skipped = {id(a) for a, _ in outcome.skipped}
    carried_out = replace(plan, actions=tuple(a for a in plan.actions if id(a) not in skipped))
    outcome.verified, outcome.verification = book.verify(ctx, carried_out, opts)
    return outcome

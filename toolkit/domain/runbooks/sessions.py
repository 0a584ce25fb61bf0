"""Plans for the session runbooks: end sessions idle in a transaction, cancel long queries.

Only client backends are ever touched: never a superuser's, never replication or background workers,
never a database the caller did not name (or, by default, one the inventory's PgBouncer does not serve).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from toolkit.domain.runbooks.base import Action, RunbookPlan
from toolkit.domain.snapshot import Backend

IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")


def _eligible(b: Backend, databases: Collection[str], superusers: Collection[str]) -> bool:
    return b.backend_type == "client backend" and b.usename not in superusers and b.datname in databases


def _holder(owners: Mapping[int, Mapping[str, str]], b: Backend) -> str:
    node = owners.get(b.pid, {}).get("app_node")
    return f" held by app node {node}" if node else ""


def plan_terminate_idle(
    backends: Sequence[Backend],
    owners: Mapping[int, Mapping[str, str]],
    *,
    target: str,
    older_than: float,
    databases: Collection[str],
    superusers: Collection[str],
    application_name: str | None = None,
    app_node: str | None = None,
) -> RunbookPlan:
    """Terminate client sessions idle in a transaction for at least ``older_than`` seconds.

    >>> b = Backend(7, "app", "app", "web", "127.0.0.1", "client backend", "idle in transaction",
    ...             30.0, 30.0, 30.0, "Client", (), "UPDATE ...")
    >>> plan = plan_terminate_idle([b], {}, target="pg", older_than=10, databases={"app"}, superusers=set())
    >>> [a.args["pid"] for a in plan.actions]
    [7]
    >>> plan_terminate_idle([b], {}, target="pg", older_than=60, databases={"app"}, superusers=set()).actions
    ()
    """
    actions = []
    for b in backends:
        if not _eligible(b, databases, superusers) or b.state not in IDLE_STATES:
            continue
        if b.state_age is None or b.state_age < older_than:
            continue
        if application_name is not None and b.application_name != application_name:
            continue
        if app_node is not None and app_node not in owners.get(b.pid, {}).get("app_node", "").split(" or "):
            continue
        actions.append(
            Action(
                target,
                "pg_terminate_backend",
                {
                    "pid": b.pid,
                    "user": b.usename,
                    "database": b.datname,
                    "application_name": b.application_name,
                },
                f"{b.state} for {b.state_age:.0f} s{_holder(owners, b)}",
            )
        )
    notes = (
        f"only client backends of {', '.join(sorted(databases))}, idle in a transaction for at least "
        f"{older_than:g} s; superusers are never touched",
    )
    return RunbookPlan("terminate-idle-transactions", tuple(actions), notes)


def plan_cancel_long(
    backends: Sequence[Backend],
    owners: Mapping[int, Mapping[str, str]],
    *,
    target: str,
    older_than: float,
    databases: Collection[str],
    superusers: Collection[str],
) -> RunbookPlan:
    """Cancel client queries running for at least ``older_than`` seconds."""
    actions = tuple(
        Action(
            target,
            "pg_cancel_backend",
            {"pid": b.pid, "user": b.usename, "database": b.datname, "application_name": b.application_name},
            f"query running for {b.query_age:.0f} s{_holder(owners, b)}: {b.query[:60]}",
        )
        for b in backends
        if _eligible(b, databases, superusers)
        and b.state == "active"
        and b.query_age is not None
        and b.query_age >= older_than
    )
    notes = (
        f"only client backends of {', '.join(sorted(databases))}, active for at least {older_than:g} s; "
        "cancel first, terminate only with --terminate after --grace",
    )
    return RunbookPlan("cancel-long-queries", actions, notes)

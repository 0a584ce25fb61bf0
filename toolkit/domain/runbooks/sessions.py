"""Plans for the session runbooks: end sessions idle in a transaction, cancel long queries.

Only client backends are ever touched: never a superuser's, never replication (walsenders) or
background workers, never a database the caller did not name (or, by default, one the inventory's
PgBouncer does not serve). By default also never the toolkit's own sessions (application_name
``toolkit...``) nor the roles that bypass PgBouncer (the names of ``database_bypass_connections``:
migrations, cron, monitoring, admin), unless the caller asks for them.

A pid alone does not name a session: PostgreSQL reuses pids, and a pooled server connection runs one
client's query after another. So every action carries a guard, the planned session's identity
(``backend_start``, and ``query_start`` or ``xact_start``, and its state), and the signal is sent by one
statement that re-checks it (toolkit.adapters.pg_signal). A session that changed is skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from toolkit.domain.attribution import holder_text
from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import Action, RunbookPlan
from toolkit.domain.snapshot import Backend

IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")
TOOLKIT_APPLICATION_NAME = "toolkit"  # every adapter connects with an application_name starting so
DEFAULT_MAX_SESSIONS = 50
GUARD_COLUMNS = ("backend_start", "xact_start", "query_start", "state")


@dataclass(frozen=True)
class SessionKey:
    """What tells one session (and one query in it) from the next on the same pid.

    Timestamps are PostgreSQL's own, as ISO text with the offset, so that they compare exactly.
    """

    backend_start: str
    xact_start: str | None
    query_start: str | None


@dataclass(frozen=True)
class Scope:
    """Which sessions a session runbook may act on, and how many at most."""

    databases: Collection[str]
    superusers: Collection[str]
    bypass_roles: Collection[str] = ()  # the names of database_bypass_connections
    include_bypass: bool = False
    include_toolkit: bool = False
    max_sessions: int = DEFAULT_MAX_SESSIONS


def left_alone(b: Backend, scope: Scope) -> str | None:
    """Why ``b`` is never touched by this run, or None when it may be.

    >>> b = Backend(7, "cron", "app", "nightly", "", "client backend", "active", 9.0, 9.0, 9.0, "", (), "")
    >>> left_alone(b, Scope({"app"}, set(), bypass_roles={"cron"}))
    'a role that bypasses PgBouncer (cron)'
    >>> left_alone(b, Scope({"app"}, set(), bypass_roles={"cron"}, include_bypass=True)) is None
    True
    """
    if b.backend_type != "client backend":
        return "not a client backend (replication, background worker)"
    if b.usename in scope.superusers:
        return "a superuser"
    if b.datname not in scope.databases:
        return "another database"
    if not scope.include_toolkit and b.application_name.startswith(TOOLKIT_APPLICATION_NAME):
        return "the toolkit's own session"
    bypass = {b.usename, b.application_name} & set(scope.bypass_roles)
    if bypass and not scope.include_bypass:
        return f"a role that bypasses PgBouncer ({', '.join(sorted(bypass))})"
    return None


def guard_for(key: SessionKey, state: str, *, query: bool, xact: bool) -> dict[str, str | None]:
    """The identity an action re-checks: backend_start, then query_start and/or xact_start, and state."""
    guard: dict[str, str | None] = {"backend_start": key.backend_start}
    if xact:
        guard["xact_start"] = key.xact_start
    if query:
        guard["query_start"] = key.query_start
    guard["state"] = state
    return guard


def what_changed(guard: Mapping[str, object], now: Mapping[str, object] | None) -> str:
    """Why a guarded action found nothing to signal: the session ended, or what differs now.

    >>> what_changed({"backend_start": "a", "query_start": "q1", "state": "active"}, None)
    'the session ended before the action'
    >>> what_changed({"backend_start": "a", "query_start": "q1", "state": "active"},
    ...              {"backend_start": "a", "query_start": "q2", "state": "active"})
    'the session runs another query now (query_start changed)'
    >>> what_changed({"backend_start": "a", "state": "active"}, {"backend_start": "b", "state": "active"})
    'another session has the pid now (backend_start changed)'
    """
    if now is None:
        return "the session ended before the action"
    if str(now.get("backend_start")) != str(guard.get("backend_start")):
        return "another session has the pid now (backend_start changed)"
    if "xact_start" in guard and str(now.get("xact_start")) != str(guard.get("xact_start")):
        return "the session is in another transaction now (xact_start changed)"
    if "query_start" in guard and str(now.get("query_start")) != str(guard.get("query_start")):
        return "the session runs another query now (query_start changed)"
    if now.get("state") != guard.get("state"):
        return f"the session is {now.get('state') or 'in another state'} now, not {guard.get('state')}"
    return "the session no longer matched the plan"


def _holder(owners: Mapping[int, Mapping[str, str]], b: Backend) -> str:
    text = holder_text(owners.get(b.pid, {}))
    return f", {text}" if text else ""


def _capped(runbook: str, actions: list[Action], scope: Scope) -> tuple[Action, ...]:
    if len(actions) > scope.max_sessions:
        raise RefusedError(
            f"{runbook}: {len(actions)} sessions match, more than --max {scope.max_sessions}; nothing "
            "was done: narrow the run (--database, --application-name, --older-than) or raise --max"
        )
    return tuple(actions)


def _skipped_note(skipped: Counter[str]) -> tuple[str, ...]:
    if not skipped:
        return ()
    parts = ", ".join(f"{n} {why}" for why, n in sorted(skipped.items()))
    return (f"left alone: {parts}",)


def _admitted(
    b: Backend, scope: Scope, keys: Mapping[int, SessionKey], skipped: Counter[str]
) -> SessionKey | None:
    """The session's identity when the runbook may act on it; otherwise count why not and give None."""
    why = left_alone(b, scope)
    key = keys.get(b.pid)
    if why is None and key is None:
        why = "no identity read"
    if why is not None or key is None:
        skipped[why or ""] += 1
        return None
    return key


def _args(b: Backend, owners: Mapping[int, Mapping[str, str]]) -> dict[str, object]:
    args: dict[str, object] = {
        "pid": b.pid,
        "user": b.usename,
        "database": b.datname,
        "application_name": b.application_name,
    }
    node = owners.get(b.pid, {}).get("app_node")
    if node:
        args["app_node"] = node  # recorded in the audit log: whose request held it
    return args


def plan_terminate_idle(
    backends: Sequence[Backend],
    owners: Mapping[int, Mapping[str, str]],
    keys: Mapping[int, SessionKey],
    *,
    target: str,
    older_than: float,
    scope: Scope,
    application_name: str | None = None,
    app_node: str | None = None,
) -> RunbookPlan:
    """Terminate client sessions idle in a transaction for at least ``older_than`` seconds.

    >>> b = Backend(7, "app", "app", "web", "127.0.0.1", "client backend", "idle in transaction",
    ...             30.0, 30.0, 30.0, "Client", (), "UPDATE ...")
    >>> keys = {7: SessionKey("t0", "t1", "t2")}
    >>> plan = plan_terminate_idle([b], {}, keys, target="pg", older_than=10, scope=Scope({"app"}, set()))
    >>> [(a.args["pid"], a.guard["xact_start"]) for a in plan.actions]
    [(7, 't1')]
    >>> plan_terminate_idle([b], {}, keys, target="pg", older_than=60, scope=Scope({"app"}, set())).actions
    ()
    """
    actions = []
    skipped: Counter[str] = Counter()
    for b in backends:
        if b.state not in IDLE_STATES or b.state_age is None or b.state_age < older_than:
            continue
        if application_name is not None and b.application_name != application_name:
            continue
        if app_node is not None and app_node not in owners.get(b.pid, {}).get("app_node", "").split(" or "):
            continue
        key = _admitted(b, scope, keys, skipped)
        if key is None:
            continue
        actions.append(
            Action(
                target,
                "pg_terminate_backend",
                _args(b, owners),
                f"{b.state} for {b.state_age:.0f} s{_holder(owners, b)}",
                guard_for(key, b.state, query=True, xact=True),
            )
        )
    notes = (
        f"only client backends of {', '.join(sorted(scope.databases))}, idle in a transaction for at "
        f"least {older_than:g} s; superusers are never touched",
        "each session is ended only if it is still the same transaction, idle (backend_start, xact_start, "
        "query_start and state re-checked in the same statement); one that changed is skipped",
        *_skipped_note(skipped),
    )
    return RunbookPlan(
        "terminate-idle-transactions", _capped("terminate-idle-transactions", actions, scope), notes
    )


def plan_cancel_long(
    backends: Sequence[Backend],
    owners: Mapping[int, Mapping[str, str]],
    keys: Mapping[int, SessionKey],
    *,
    target: str,
    older_than: float,
    scope: Scope,
) -> RunbookPlan:
    """Cancel client queries running for at least ``older_than`` seconds."""
    actions = []
    skipped: Counter[str] = Counter()
    for b in backends:
        if b.state != "active" or b.query_age is None or b.query_age < older_than:
            continue
        key = _admitted(b, scope, keys, skipped)
        if key is None:
            continue
        actions.append(
            Action(
                target,
                "pg_cancel_backend",
                _args(b, owners),
                f"query running for {b.query_age:.0f} s{_holder(owners, b)}: {b.query[:60]}",
                guard_for(key, b.state, query=True, xact=False),
            )
        )
    notes = (
        f"only client backends of {', '.join(sorted(scope.databases))}, active for at least "
        f"{older_than:g} s; cancel first, terminate only with --terminate after --grace",
        "each query is signalled only if it is still the same query (backend_start, query_start and state "
        "re-checked in the same statement); a session that runs another query now is skipped",
        *_skipped_note(skipped),
    )
    return RunbookPlan("cancel-long-queries", _capped("cancel-long-queries", actions, scope), notes)

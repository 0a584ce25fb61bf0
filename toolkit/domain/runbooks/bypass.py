"""Plan for end-bypass-sessions: list, and end by role, the PostgreSQL sessions that bypass PgBouncer.

Definition. A session *bypasses PgBouncer* when it is a client backend (not replication, not a
background worker) that no PgBouncer holds: its pid is not a server connection of any PgBouncer
process that was read (SHOW SERVERS ``remote_pid``) and its ``client_addr`` is not an address of a
PgBouncer host of the inventory. Either sign makes it pooled, so a pooled session is never ended
because one PgBouncer could not be read, or connects from an address the inventory does not name.
A session over the Unix socket (no ``client_addr``) is direct. The cost of the rule: a client that
connects straight to PostgreSQL from a PgBouncer host itself counts as pooled and is left alone.

Each bypass session is *budgeted* when its role or application_name is a name of
``database_bypass_connections`` (the slots the pool budget leaves for admin, monitoring, migrations,
cron), and *unbudgeted* otherwise: those take slots the plan gave to PgBouncer (doctor's
``postgres.connections_bypass_pgbouncer`` for app roles).

Ending one uses the guards of the session runbooks (toolkit.domain.runbooks.sessions): never a
superuser nor a non-client backend, the toolkit's own sessions only when asked, at most ``--max``
sessions, and each pid terminated only if its ``backend_start`` still matches, in the signalling
statement. The role named with ``--role`` is the caller's consent to end sessions of a bypass role.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import Action, RunbookPlan
from toolkit.domain.runbooks.sessions import Scope, SessionKey, _admitted, _skipped_note
from toolkit.domain.snapshot import Backend

RUNBOOK = "end-bypass-sessions"


def is_bypass(b: Backend, pooler_addresses: Collection[str], pooled_pids: Collection[int]) -> bool:
    """Whether ``b`` is a client backend that no PgBouncer holds (see the module's definition).

    >>> b = Backend(7, "cron", "app", "nightly", "198.18.0.1", "client backend", "idle", None, None, 1.0,
    ...             "", (), "")
    >>> is_bypass(b, {"198.18.0.11"}, set()), is_bypass(b, {"198.18.0.1"}, set()), is_bypass(b, (), {7})
    (True, False, False)
    """
    if b.backend_type != "client backend":
        return False
    if b.pid in pooled_pids:
        return False
    return not (b.client_addr and b.client_addr in pooler_addresses)


def budget_name(b: Backend, budget: Mapping[str, int]) -> str | None:
    """The name of database_bypass_connections that ``b`` counts against (role first), or None."""
    if b.usename in budget:
        return b.usename
    if b.application_name in budget:
        return b.application_name
    return None


def groups(backends: Sequence[Backend], budget: Mapping[str, int]) -> list[str]:
    """One line per (role, application_name, client address) of bypass sessions, most first.

    >>> b = Backend(7, "cron", "app", "nightly", "", "client backend", "idle", None, None, 1.0, "", (), "")
    >>> groups([b, replace(b, pid=8)], {"cron": 1})
    ['role cron, application nightly, from local socket: 2 session(s); budget cron: 1 (1 over)']
    """
    counted = Counter((b.usename, b.application_name, b.client_addr) for b in backends)
    by_budget = Counter(budget_name(b, budget) for b in backends)
    out = []
    for (role, app, addr), n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])):
        sample = next(
            b for b in backends if (b.usename, b.application_name, b.client_addr) == (role, app, addr)
        )
        name = budget_name(sample, budget)
        if name is None:
            tail = "not in database_bypass_connections: it takes slots the plan gave to PgBouncer"
        else:
            over = by_budget[name] - budget[name]
            tail = f"budget {name}: {budget[name]}" + (f" ({over} over)" if over > 0 else "")
        out.append(
            f"role {role}, application {app or '(none)'}, from {addr or 'local socket'}: "
            f"{n} session(s); {tail}"
        )
    return out


def plan_end_bypass(
    backends: Sequence[Backend],
    keys: Mapping[int, SessionKey],
    *,
    target: str,
    role: str | None,
    pooler_addresses: Collection[str],
    pooled_pids: Collection[int],
    budget: Mapping[str, int],
    scope: Scope,
    application_name: str | None = None,
) -> RunbookPlan:
    """Terminate the bypass sessions of ``role``; without a role, only list the bypass sessions.

    >>> def s(pid, role, addr):
    ...     return Backend(pid, role, "app", "psql", addr, "client backend", "idle", None, None, 1.0,
    ...                    "", (), "")
    >>> found = [s(1, "cron", "198.18.0.1"), s(2, "app", "198.18.0.11"), s(3, "admin", "198.18.0.1")]
    >>> keys = {pid: SessionKey(f"t{pid}", None, None) for pid in (1, 2, 3)}
    >>> kw = dict(target="pg", pooler_addresses={"198.18.0.11"}, pooled_pids=(), budget={"cron": 1},
    ...           scope=Scope({"app"}, set()))
    >>> [(a.args["pid"], dict(a.guard)) for a in plan_end_bypass(found, keys, role="cron", **kw).actions]
    [(1, {'backend_start': 't1'})]
    >>> plan_end_bypass(found, keys, role="app", **kw).actions
    ()
    >>> plan_end_bypass(found, keys, role=None, **kw).actions
    ()
    """
    bypass = [b for b in backends if is_bypass(b, pooler_addresses, pooled_pids)]
    listing = groups(bypass, budget)
    notes = [
        f"{len(bypass)} session(s) bypass PgBouncer (client backends no PgBouncer holds: not a server "
        "connection in SHOW SERVERS, not from a PgBouncer host's address)",
        *listing,
    ]
    if role is None:
        notes.append("nothing is ended without --role NAME: pick a role above")
        return RunbookPlan(RUNBOOK, (), tuple(notes))
    scope = replace(scope, include_bypass=True)  # --role names them: the caller's consent
    actions = []
    skipped: Counter[str] = Counter()
    for b in bypass:
        if b.usename != role:
            continue
        if application_name is not None and b.application_name != application_name:
            continue
        key = _admitted(b, scope, keys, skipped)
        if key is None:
            continue
        name = budget_name(b, budget)
        actions.append(
            Action(
                target,
                "pg_terminate_backend",
                {
                    "pid": b.pid,
                    "user": b.usename,
                    "database": b.datname,
                    "application_name": b.application_name,
                    "client_addr": b.client_addr or "local",
                },
                f"bypasses PgBouncer from {b.client_addr or 'the local socket'}, {b.state}"
                + (f", budgeted as {name}" if name else ", not budgeted"),
                {"backend_start": key.backend_start},
            )
        )
    notes += [
        f"only role {role}'s bypass sessions of {', '.join(sorted(scope.databases))}; superusers, "
        "replication and background workers are never touched",
        "each session is ended only if its pid still has the planned backend_start (re-checked in the "
        "terminating statement); one replaced since the plan is skipped",
        *_skipped_note(skipped),
    ]
    if len(actions) > scope.max_sessions:
        raise RefusedError(
            f"{RUNBOOK}: {len(actions)} bypass sessions of role {role} match, more than --max "
            f"{scope.max_sessions}; nothing was done: narrow the run (--database, --application-name) "
            "or raise --max"
        )
    return RunbookPlan(RUNBOOK, tuple(actions), tuple(notes))

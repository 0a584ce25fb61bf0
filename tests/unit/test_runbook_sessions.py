"""The session runbooks' pure planners: the guard each action carries, what is left alone, the --max cap,
and how a changed session is described."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import snapshots as s
from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.sessions import (
    Scope,
    SessionKey,
    left_alone,
    plan_cancel_long,
    plan_terminate_idle,
    what_changed,
)

PG = "postgres@10.0.0.9:5432"
T0, T1, T2 = "2026-12-01T10:00:00.123456+00:00", "2026-12-01T10:05:00.5+00:00", "2026-12-01T10:05:01+00:00"
SCOPE = Scope({"app"}, {"postgres"}, bypass_roles={"migrations", "cron", "monitoring", "admin"})


def _idle(pid: int, age: float = 120.0, **changes: Any) -> Any:
    return s.backend(pid, state="idle in transaction", xact_age=age, state_age=age, **changes)


def _active(pid: int, age: float = 120.0, **changes: Any) -> Any:
    return s.backend(pid, state="active", xact_age=age, query_age=age, state_age=age, **changes)


def _keys(*pids: int) -> dict[int, SessionKey]:
    return {pid: SessionKey(T0, T1, T2) for pid in pids}


def test_terminate_carries_the_planned_transaction_as_its_guard() -> None:
    plan = plan_terminate_idle([_idle(7)], {}, _keys(7), target=PG, older_than=60, scope=SCOPE)
    (action,) = plan.actions
    assert dict(action.guard) == {
        "backend_start": T0,
        "xact_start": T1,
        "query_start": T2,
        "state": "idle in transaction",
    }
    assert action.args["pid"] == 7
    assert plan.to_dict()["actions"][0]["guard"]["xact_start"] == T1
    assert "backend_start" not in action.describe()  # the table stays readable; JSON and audit carry it


def test_cancel_carries_the_planned_query_as_its_guard() -> None:
    (action,) = plan_cancel_long([_active(8)], {}, _keys(8), target=PG, older_than=60, scope=SCOPE).actions
    assert dict(action.guard) == {"backend_start": T0, "query_start": T2, "state": "active"}


def test_a_session_without_an_identity_is_never_planned() -> None:
    plan = plan_terminate_idle([_idle(7)], {}, {}, target=PG, older_than=60, scope=SCOPE)
    assert plan.actions == ()
    assert any("no identity read" in n for n in plan.notes)


@pytest.mark.parametrize(
    ("backend", "reason"),
    [
        (_idle(1, usename="postgres"), "a superuser"),
        (_idle(2, backend_type="walsender"), "not a client backend"),
        (_idle(3, datname="other"), "another database"),
        (_idle(4, application_name="toolkit"), "the toolkit's own session"),
        (_idle(5, application_name="toolkit audit queries"), "the toolkit's own session"),
        (_idle(6, usename="migrations"), "bypasses PgBouncer (migrations)"),
        (_idle(7, application_name="cron"), "bypasses PgBouncer (cron)"),
        (_idle(8, usename="monitoring"), "bypasses PgBouncer (monitoring)"),
    ],
)
def test_left_alone_by_default(backend: Any, reason: str) -> None:
    assert reason in (left_alone(backend, SCOPE) or "")
    plan = plan_terminate_idle([backend], {}, _keys(backend.pid), target=PG, older_than=60, scope=SCOPE)
    assert plan.actions == ()
    assert any(n.startswith("left alone: 1 ") for n in plan.notes), plan.notes


def test_bypass_roles_and_toolkit_sessions_only_when_asked_for() -> None:
    backends = [
        _idle(6, usename="migrations"),
        _idle(4, application_name="toolkit"),
        _idle(1, usename="postgres"),
    ]
    wide = Scope(
        {"app"}, {"postgres"}, bypass_roles={"migrations"}, include_bypass=True, include_toolkit=True
    )
    plan = plan_terminate_idle(backends, {}, _keys(6, 4, 1), target=PG, older_than=60, scope=wide)
    assert sorted(a.args["pid"] for a in plan.actions) == [4, 6]  # never the superuser


def test_more_sessions_than_max_is_refused_with_the_count() -> None:
    backends = [_idle(pid) for pid in range(100, 103)]
    scope = Scope({"app"}, set(), max_sessions=2)
    with pytest.raises(RefusedError, match=r"3 sessions match, more than --max 2; nothing was done"):
        plan_terminate_idle(backends, {}, _keys(100, 101, 102), target=PG, older_than=60, scope=scope)
    with pytest.raises(RefusedError, match="more than --max 2"):
        plan_cancel_long(
            [_active(p) for p in range(100, 103)],
            {},
            _keys(100, 101, 102),
            target=PG,
            older_than=1,
            scope=scope,
        )
    exactly = plan_terminate_idle(backends[:2], {}, _keys(100, 101), target=PG, older_than=60, scope=scope)
    assert len(exactly.actions) == 2


def test_the_default_cap_is_fifty() -> None:
    backends = [_idle(pid) for pid in range(51)]
    with pytest.raises(RefusedError, match="51 sessions match, more than --max 50"):
        plan_terminate_idle(
            backends, {}, _keys(*range(51)), target=PG, older_than=60, scope=Scope({"app"}, set())
        )


@pytest.mark.parametrize(
    ("now", "said"),
    [
        (None, "the session ended before the action"),
        ({"backend_start": "other", "query_start": T2, "state": "active"}, "another session has the pid"),
        (
            {"backend_start": T0, "xact_start": "t9", "query_start": T2, "state": "idle in transaction"},
            "xact_start",
        ),
        (
            {"backend_start": T0, "xact_start": T1, "query_start": "t9", "state": "active"},
            "query_start changed",
        ),
        ({"backend_start": T0, "xact_start": T1, "query_start": T2, "state": "idle"}, "is idle now"),
    ],
)
def test_what_changed_names_the_difference(now: dict[str, str] | None, said: str) -> None:
    guard = {"backend_start": T0, "xact_start": T1, "query_start": T2, "state": "idle in transaction"}
    assert said in what_changed(guard, now)

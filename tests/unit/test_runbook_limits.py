"""The planners of pgbouncer-raise-max-client-conn (the open-files budget) and end-bypass-sessions (what
bypasses PgBouncer, by role, with the session guards)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import snapshots as s
from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.runbooks.bypass import groups, is_bypass, plan_end_bypass
from toolkit.domain.runbooks.limits import ProcessLimits, parse_limits, plan_raise
from toolkit.domain.runbooks.sessions import Scope, SessionKey
from toolkit.domain.sizing import PGBOUNCER_FD_SLACK

# --- max_client_conn within the open-files limit -------------------------------------------------

PGB1 = ProcessLimits("pgbouncer@10.0.0.11:6432", "pgb1", 29, 1, 20, 5, 1024, "live, /proc limits")
PGB2 = [
    ProcessLimits(f"pgbouncer@10.0.0.12:6432 process {n}", "pgb2", 29, 2, 12, 3, 2048, "live") for n in (1, 2)
]


def test_the_largest_value_is_the_limit_less_server_connections_and_spare() -> None:
    assert PGB1.server_connections == 25
    assert PGB1.largest == 1024 - 25 - PGBOUNCER_FD_SLACK
    assert PGB2[0].largest == 2048 - 2 * 15 - PGBOUNCER_FD_SLACK


def test_a_value_that_fits_is_one_set_per_process() -> None:
    plan = plan_raise([PGB1, *PGB2], 200, {})
    assert [(a.target, a.kind, a.args["max_client_conn"], a.args["was"]) for a in plan.actions] == [
        (PGB1.label, "SET", 200, 29),
        (PGB2[0].label, "SET", 200, 29),
        (PGB2[1].label, "SET", 200, 29),
    ]
    assert any("pgbouncer_max_client_conn" in n and "RELOAD" in n for n in plan.notes)


def test_the_largest_value_fits_and_one_more_is_refused_naming_it() -> None:
    largest = PGB1.largest
    assert largest is not None
    assert plan_raise([PGB1], largest, {}).actions[0].args["max_client_conn"] == largest
    with pytest.raises(
        RefusedError, match=rf"nothing changed.*admits at most {largest} \(open-files limit 1024"
    ):
        plan_raise([PGB1], largest + 1, {})


def test_one_process_that_cannot_fit_refuses_the_whole_run() -> None:
    small = ProcessLimits("pgbouncer@10.0.0.13:6432", "pgb3", 29, 1, 20, 5, 200, "the plan's LimitNOFILE")
    with pytest.raises(RefusedError, match=r"pgbouncer@10\.0\.0\.13:6432 admits at most 111") as exc:
        plan_raise([PGB1, small], 500, {})
    assert PGB1.label not in str(exc.value)


def test_without_a_value_each_host_gets_its_planned_one() -> None:
    plan = plan_raise([PGB1, *PGB2], None, {"pgb1": 40, "pgb2": 29})
    assert [(a.target, a.args["max_client_conn"]) for a in plan.actions] == [(PGB1.label, 40)]
    assert any("29 already" in n for n in plan.notes)
    with pytest.raises(RunbookUsageError, match="give --max-client-conn"):
        plan_raise([PGB1], None, {})


def test_a_value_at_or_below_the_live_one_is_left_as_it_is() -> None:
    assert plan_raise([PGB1], 29, {}).actions == ()
    assert plan_raise([PGB1], 10, {}).actions == ()


def test_an_unlimited_process_takes_any_value() -> None:
    free = ProcessLimits("p", "h", 29, 1, 20, 5, None, "live")
    assert plan_raise([free], 1_000_000, {}).actions[0].args["largest"] is None


@pytest.mark.parametrize(
    ("text", "limit"),
    [
        (
            "Limit                     Soft Limit           Hard Limit           Units\n"
            "Max open files            1024                 524288               files\n",
            1024,
        ),
        ("Max open files            unlimited            unlimited            files\n", None),
        ("4096\n", 4096),
        ("infinity\n", None),
    ],
)
def test_limits_are_read_from_proc_or_systemd(text: str, limit: int | None) -> None:
    assert parse_limits(text) == limit


def test_an_unreadable_limit_is_an_error() -> None:
    with pytest.raises(ValueError, match="no open-files limit"):
        parse_limits("Failed to get properties: Unit pgbouncer.service not found.")


# --- sessions that bypass PgBouncer -------------------------------------------------------------

PG = "postgres@10.0.0.10:5432"
POOLERS = {"10.0.0.11", "10.0.0.12"}
BUDGET = {"admin": 2, "monitoring": 2, "migrations": 1, "cron": 1}
SCOPE = Scope({"app"}, {"postgres"}, bypass_roles=set(BUDGET))
T0 = "2026-12-01T10:00:00.123456+00:00"


def _keys(*pids: int) -> dict[int, SessionKey]:
    return {pid: SessionKey(T0, None, None) for pid in pids}


def _plan(backends: list[Any], role: str | None, **kw: Any) -> Any:
    args: dict[str, Any] = {
        "target": PG,
        "role": role,
        "pooler_addresses": POOLERS,
        "pooled_pids": kw.pop("pooled", set()),
        "budget": BUDGET,
        "scope": kw.pop("scope", SCOPE),
    }
    return plan_end_bypass(backends, _keys(*(b.pid for b in backends)), **args, **kw)


def test_pooled_sessions_are_those_from_a_pgbouncer_address_or_in_show_servers() -> None:
    via_address = s.backend(1, client_addr="10.0.0.11")
    via_servers = s.backend(2, client_addr="10.9.9.9")  # PgBouncer behind NAT: SHOW SERVERS knows it
    direct = s.backend(3, client_addr="10.0.0.13")
    local = s.backend(4, client_addr="")
    walsender = s.backend(5, client_addr="10.0.0.20", backend_type="walsender")
    found = [
        b.pid for b in (via_address, via_servers, direct, local, walsender) if is_bypass(b, POOLERS, {2})
    ]
    assert found == [3, 4]


def test_without_a_role_the_run_lists_groups_and_ends_nothing() -> None:
    backends = [
        s.backend(1, usename="cron", application_name="nightly", client_addr="10.0.0.20"),
        s.backend(2, usename="cron", application_name="nightly", client_addr="10.0.0.20"),
        s.backend(3, usename="app", client_addr="10.0.0.13"),
        s.backend(4, usename="app", client_addr="10.0.0.11"),
    ]
    plan = _plan(backends, None)
    assert plan.actions == ()
    assert plan.notes[0].startswith("3 session(s) bypass PgBouncer")
    assert (
        "role cron, application nightly, from 10.0.0.20: 2 session(s); budget cron: 1 (1 over)" in plan.notes
    )
    assert any(n.startswith("role app,") and "not in database_bypass_connections" in n for n in plan.notes)
    assert any("--role" in n for n in plan.notes)


def test_a_budget_name_matches_the_application_name_too() -> None:
    (line,) = groups([s.backend(1, usename="ops", application_name="migrations", client_addr="")], BUDGET)
    assert line.endswith("budget migrations: 1")


def test_only_the_named_roles_bypass_sessions_are_ended_with_backend_start_as_guard() -> None:
    backends = [
        s.backend(1, usename="cron", client_addr="10.0.0.20"),
        s.backend(2, usename="cron", client_addr="10.0.0.11"),  # through PgBouncer: not a bypass
        s.backend(3, usename="admin", client_addr="10.0.0.20"),
        s.backend(4, usename="cron", client_addr="10.0.0.20", datname="postgres"),  # not a served database
    ]
    plan = _plan(backends, "cron")
    assert [(a.kind, a.args["pid"], dict(a.guard)) for a in plan.actions] == [
        ("pg_terminate_backend", 1, {"backend_start": T0})
    ]
    assert plan.actions[0].args["client_addr"] == "10.0.0.20"
    assert "budgeted as cron" in plan.actions[0].why
    assert any("1 another database" in n for n in plan.notes)


def test_an_app_role_through_pgbouncer_is_never_ended() -> None:
    backends = [s.backend(1, client_addr="10.0.0.11"), s.backend(2, client_addr="10.9.9.9")]
    assert _plan(backends, "app", pooled={2}).actions == ()


def test_superusers_non_client_backends_and_the_toolkit_are_left_alone() -> None:
    backends = [
        s.backend(1, usename="postgres", client_addr=""),
        s.backend(2, usename="toolkit_monitor", application_name="toolkit-doctor", client_addr="10.0.0.1"),
        s.backend(3, usename="toolkit_monitor", application_name="psql", client_addr="10.0.0.1"),
    ]
    assert _plan(backends, "postgres").actions == ()
    plan = _plan(backends, "toolkit_monitor")
    assert [a.args["pid"] for a in plan.actions] == [3]
    assert any("the toolkit's own session" in n for n in plan.notes)
    both = _plan(backends, "toolkit_monitor", scope=Scope({"app"}, {"postgres"}, include_toolkit=True))
    assert [a.args["pid"] for a in both.actions] == [2, 3]


def test_more_sessions_than_max_are_refused() -> None:
    backends = [s.backend(pid, usename="cron", client_addr="10.0.0.20") for pid in range(1, 5)]
    with pytest.raises(RefusedError, match="4 bypass sessions of role cron match, more than --max 3"):
        _plan(backends, "cron", scope=Scope({"app"}, set(), max_sessions=3))
    assert len(_plan(backends, "cron", scope=Scope({"app"}, set(), max_sessions=4)).actions) == 4


def test_application_name_narrows_the_role() -> None:
    backends = [
        s.backend(1, usename="cron", application_name="a", client_addr="10.0.0.20"),
        s.backend(2, usename="cron", application_name="b", client_addr="10.0.0.20"),
    ]
    assert [a.args["pid"] for a in _plan(backends, "cron", application_name="b").actions] == [2]

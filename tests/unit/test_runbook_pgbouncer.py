"""The PgBouncer runbooks' pure planners: refusals, the budget, the diff, flags read by column name."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import snapshots as s
from toolkit.adapters.pgbouncer import admin_command, quote_ident, quote_literal, set_command
from toolkit.domain import pgbouncer_rows as show
from toolkit.domain.errors import RefusedError
from toolkit.domain.pgbouncer_rows import DatabaseRow
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.runbooks.pgbouncer import (
    check_database,
    config_diff,
    long_transactions,
    parse_ini,
    plan_database_command,
    plan_pause,
    plan_reconnect,
    plan_reload,
    plan_resize,
    plan_resume,
    resized_topology,
    restart_needed,
)

PGB = "pgbouncer@10.0.0.5:6432"


def _xact(pid: int, age: float | None, **changes: Any) -> Any:
    return s.backend(pid, state="idle in transaction", xact_age=age, state_age=age, **changes)


# --- pause -------------------------------------------------------------------------------------


def test_pause_refuses_while_a_transaction_older_than_the_limit_is_open() -> None:
    expected = r"1 transaction\(s\) open for at least 10 s would hold the PAUSE \(pid 7 "
    with pytest.raises(RefusedError, match=expected):  # the live state refuses: exit 2, not 64
        plan_pause([PGB], [_xact(7, 12.0)], database=None, older_than=10, timeout=5)


def test_pause_notes_younger_transactions_and_plans_one_parallel_action() -> None:
    plan = plan_pause(
        [PGB, "pgbouncer@10.0.0.6:6432"], [_xact(7, 2.0)], database=None, older_than=10, timeout=3
    )
    (action,) = plan.actions
    assert action.kind == "PAUSE"
    assert action.target == f"{PGB}, pgbouncer@10.0.0.6:6432"
    assert action.args == {"database": "every database", "timeout": 3, "targets": 2}
    assert any("1 younger transaction(s) open" in n for n in plan.notes)
    assert any("every PgBouncer is resumed" in n for n in plan.notes)


def test_pause_without_targets_is_refused() -> None:
    with pytest.raises(RunbookUsageError, match="no PgBouncer selected"):
        plan_pause([], [], database=None, older_than=10, timeout=5)


def test_long_transactions_skip_superusers_other_databases_and_non_clients() -> None:
    found = long_transactions(
        [
            _xact(1, 30.0),
            _xact(2, 30.0, usename="postgres"),
            _xact(3, 30.0, datname="other"),
            _xact(4, 30.0, backend_type="walsender"),
            _xact(5, None),
            _xact(6, 60.0),
        ],
        {"app"},
        {"postgres"},
    )
    assert [b.pid for b in found] == [6, 1]


# --- resume and SHOW DATABASES -------------------------------------------------------------------


def test_flags_are_read_by_column_name_whatever_the_order_or_extra_columns() -> None:
    names = ["disabled", "new_column", "name", "pool_size", "reserve_pool_size", "paused"]
    rows = [[0, "x", "app", 20, 5, "1"], [1, None, "shop", 10, 0, 0]]
    flags = show.by_name(show.databases(names, rows, show.Version(1, 24, 1)))
    assert (flags["app"].paused, flags["app"].disabled, flags["app"].reserve_pool_size) == (True, False, 5)
    assert (flags["shop"].paused, flags["shop"].disabled) == (False, True)


def test_resume_plans_only_where_something_is_paused() -> None:
    flags = {
        PGB: {"app": DatabaseRow("app", paused=True)},
        "pgbouncer@10.0.0.6:6432": {"app": DatabaseRow("app")},
    }
    (action,) = plan_resume(flags, database=None, timeout=5).actions
    assert action.target == PGB
    assert plan_resume(flags, database="shop", timeout=5).actions == ()


# --- database commands -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (None, "needs --database"),
        ("", "needs --database"),
        ("pgbouncer", "is the admin console"),
        ("app; SHUTDOWN", "is not a database name"),
        ("shop", "serves no database 'shop'"),
    ],
)
def test_database_commands_refuse_bad_databases(database: str | None, message: str) -> None:
    with pytest.raises(RunbookUsageError, match=message):
        check_database(database, {"app"}, "pgbouncer-kill-database")


def test_kill_says_the_database_stays_paused() -> None:
    plan = plan_database_command("pgbouncer-kill-database", "KILL", [PGB], "app")
    assert [(a.target, a.kind, dict(a.args)) for a in plan.actions] == [(PGB, "KILL", {"database": "app"})]
    assert "paused until RESUME" in plan.notes[0]
    assert "pgbouncer-resume --database app" in plan.notes[0]


def test_unknown_database_command_is_refused() -> None:
    with pytest.raises(RunbookUsageError, match="unknown command"):
        plan_database_command("x", "SHUTDOWN", [PGB], "app")


# --- reload ------------------------------------------------------------------------------------


def test_config_diff_lists_key_before_after() -> None:
    assert config_diff({"a": "1", "b": "2", "gone": "x"}, {"a": "1", "b": "3"}) == [
        ("b", "2", "3"),
        ("gone", "x", None),
    ]


def test_restart_needed_only_for_unchangeable_settings_that_differ() -> None:
    live = {"listen_port": ("6432", False), "pkt_buf": ("4096", False), "max_client_conn": ("50", True)}
    text = "[pgbouncer]\nlisten_port = 6433\npkt_buf = 4096\nmax_client_conn = 60\n; comment\n"
    assert restart_needed(live, parse_ini(text)) == [("listen_port", "6432", "6433")]


def test_parse_ini_without_the_section_is_empty() -> None:
    assert parse_ini("[databases]\napp = host=127.0.0.1\n") == {}


def test_reload_and_reconnect_plans() -> None:
    assert [a.kind for a in plan_reload([PGB]).actions] == ["RELOAD"]
    plan = plan_reconnect([PGB], "app")
    assert [(a.kind, dict(a.args)) for a in plan.actions] == [
        ("RECONNECT", {"database": "app"}),
        ("WAIT_CLOSE", {"database": "app"}),
    ]
    assert [a.args for a in plan_reconnect([PGB], None).actions] == [{}, {}]


# --- resize ------------------------------------------------------------------------------------


def test_resize_within_the_budget_prints_the_permanent_change() -> None:
    plan = plan_resize(s.topology(), {"pgb1": PGB}, 30, {PGB: "16"})
    (action,) = plan.actions
    assert (action.kind, dict(action.args)) == ("SET", {"default_pool_size": 30, "was": "16"})
    assert "within the budget" in action.why
    assert any("pgbouncer_default_pool_size: 30" in n and "group_vars/pgbouncer" in n for n in plan.notes)
    assert any("RELOAD" in n for n in plan.notes)


@pytest.mark.parametrize("size", [92, 500])
def test_resize_beyond_the_budget_is_refused_quoting_the_sizing(size: int) -> None:
    # 100 max_connections - 3 superuser - 6 bypass = 91 usable slots for one (process, pool) pair.
    with pytest.raises(RefusedError, match=rf"refused, nothing changed: .*default_pool_size {size} exceeds"):
        plan_resize(s.topology(), {"pgb1": PGB}, size, {})


def test_resize_to_zero_is_refused() -> None:
    with pytest.raises(RunbookUsageError, match="at least 1"):
        plan_resize(s.topology(), {"pgb1": PGB}, 0, {})


def test_resized_topology_pins_only_the_named_hosts() -> None:
    topo = s.topology(pgbouncers=(s.pgbouncer_host("pgb1"), s.pgbouncer_host("pgb2")))
    resized = resized_topology(topo, {"pgb2"}, 7)
    assert [h.overrides.default_pool_size for h in resized.pgbouncers] == [None, 7]


def test_parse_ini_skips_includes_and_reports_garbage_as_value_error() -> None:
    assert parse_ini("[pgbouncer]\npool_mode = session\n%include /etc/x.ini\n") == {"pool_mode": "session"}
    with pytest.raises(ValueError, match="unreadable PgBouncer config"):
        parse_ini("[pgbouncer]\nnot a setting line\n")


# --- quoting of admin commands -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [
        ("app", '"app"'),
        ('a"pp', '"a""pp"'),
        ("app; SHUTDOWN", '"app; SHUTDOWN"'),
        ('app"; SHUTDOWN; "x', '"app""; SHUTDOWN; ""x"'),
        ('"', '""""'),
        ("app\nSHUTDOWN", '"app\nSHUTDOWN"'),
        ("Ünïcode", '"Ünïcode"'),
    ],
)
def test_identifiers_are_double_quoted_with_quotes_doubled(name: str, quoted: str) -> None:
    assert quote_ident(name) == quoted
    # Read back as PgBouncer's WORD does ("..." with "" for one quote): the same name, nothing more.
    assert quoted[1:-1].replace('""', '"') == name


@pytest.mark.parametrize("name", ["", "a\x00b"])
def test_names_the_console_cannot_take_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="not an identifier"):
        quote_ident(name)


@pytest.mark.parametrize("verb", ["PAUSE", "RESUME", "KILL", "DISABLE", "ENABLE", "RECONNECT", "WAIT_CLOSE"])
def test_every_admin_command_quotes_its_database(verb: str) -> None:
    assert admin_command(verb, 'x"; SHUTDOWN') == f'{verb} "x""; SHUTDOWN"'
    assert admin_command(verb) == verb


def test_only_known_verbs_are_built() -> None:
    with pytest.raises(ValueError, match="not an admin command"):
        admin_command("SHUTDOWN", "app")


def test_set_quotes_the_key_and_the_value() -> None:
    assert set_command("default_pool_size", 20) == "SET \"default_pool_size\" = '20'"
    assert quote_literal("1'; SHUTDOWN") == "'1''; SHUTDOWN'"

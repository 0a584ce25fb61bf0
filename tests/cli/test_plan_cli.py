"""``toolkit plan``: exit codes, JSON shape and exact one-line messages, on fixture inventories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.cli.streams import without_inventory_line
from toolkit.cli.app import main
from toolkit.domain.errors import SizingError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 1), out, without_inventory_line(err)


def test_feasible_plan_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "-i", str(FIXTURES / "small.yml"), "--format", "json")
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["schema"] == "toolkit.plan/v1"
    pgb = data["pgbouncer"]["pgb1"]
    assert pgb["client_demand"] == 16
    assert pgb["settings"]["default_pool_size"] == 16
    assert data["redis"]["cache1"]["settings"]["maxmemory"] == 128 * 1024 * 1024
    assert "vault_app_password" not in out


def test_feasible_plan_as_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "-i", str(FIXTURES / "small.yml"))
    assert code == 0
    assert "default_pool_size" in out
    assert "usable" in out


def test_infeasible_plan_exits_2_naming_the_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "-i", str(FIXTURES / "infeasible.yml"))
    assert code == 2
    assert out == ""
    assert err == (
        "toolkit: pgbouncer host pgb1: pgbouncer_default_pool_size 100 exceeds the budget (91 usable slots / "
        "1 (process, pool) pairs = 91 server connections per pool): "
        "lower it or raise database_max_connections (each of these alone fits: "
        "database_max_connections: at least 109 (now 100))\n"
    )


def test_infeasible_session_tier_names_every_host_and_the_number_of_each_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, err = run(capsys, "plan", "-i", str(FIXTURES / "session-over.yml"))
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "pgbouncer host pgb1: session mode" in err
    assert "pgbouncer host pgb2: session mode" in err
    assert err.rstrip().endswith(
        "(each of these alone fits: pgbouncer_pool_mode: transaction (the pool then follows the database's "
        "active target); django_workers: at most 5 per app node (now up to 20); "
        "database_max_connections: at least 649 (now 200))"
    )


def test_each_fix_the_refusal_names_fits_and_one_step_short_does_not(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inventory = yaml.safe_load((FIXTURES / "session-over.yml").read_text())
    for variable, fits, short in (("database_max_connections", 649, 648), ("django_workers", 5, 6)):
        for value, expected in ((fits, 0), (short, 2)):
            changed = json.loads(json.dumps(inventory))
            if variable == "django_workers":
                for node in changed["all"]["children"]["django"]["hosts"].values():
                    node["django_workers"] = value
            else:
                changed["all"]["vars"][variable] = value
            path = tmp_path / f"{variable}-{value}.yml"
            path.write_text(yaml.safe_dump(changed))
            code, _, _ = run(capsys, "plan", "-i", str(path))
            assert code == expected, (variable, value)


def test_infeasible_plan_as_json_prints_the_refusal_and_its_fixes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "-i", str(FIXTURES / "session-over.yml"), "--format", "json")
    assert code == 2
    data = json.loads(out)
    assert data["schema"] == "toolkit.plan/v1"
    assert data["error"]["kind"] == "session"
    assert "pgbouncer host pgb2" in data["error"]["message"]
    assert data["error"]["fixes"][-1] == "database_max_connections: at least 649 (now 200)"
    assert err.startswith("toolkit: pgbouncer host pgb1")


def test_a_plan_that_fits_far_past_the_active_target_warns(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "-i", str(FIXTURES / "session-past-target.yml"), "--format", "json")
    assert code == 0
    (warning,) = json.loads(out)["warnings"]
    assert "1280 server connections at once, 16.0x the target of 80" in warning
    code, out, _ = run(capsys, "plan", "-i", str(FIXTURES / "small.yml"), "--format", "json")
    assert (code, json.loads(out)["warnings"]) == (0, [])


def test_bad_value_exits_65_naming_variable_and_host(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "-i", str(FIXTURES / "bad-value.yml"))
    assert code == 65
    assert err == (
        "toolkit: inventory: database_max_connections (host pgb1): must be an integer from 1 to 262143 "
        "(ASCII digits), got 'lots'\n"
    )


def test_malformed_inventory_exits_65_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "-i", str(FIXTURES / "malformed.yml"))
    assert code == 65
    assert err.startswith(f"toolkit: inventory: {FIXTURES / 'malformed.yml'}: ansible-inventory failed:")
    assert err.count("\n") == 1
    assert "YAML parsing failed" in err
    assert "malformed.yml:5:1" in err
    assert "Traceback" not in err


def test_missing_inventory_exits_65(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "-i", "/nonexistent/inventory")
    assert code == 65
    assert "no such file or directory" in err


@pytest.mark.parametrize("args", [["plan", "-i"], ["plan", "-i", "x", "--format", "yaml"], ["nosuch"]])
def test_usage_errors_exit_64(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 64
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SizingError):
        main(["--debug", "plan", "-i", str(FIXTURES / "infeasible.yml")])


# Issue 9, role inputs: each hostile value, set on one host of an otherwise good inventory.
HOSTILE_INPUTS = [
    ("pgb1", "pgbouncer_server_reset_query", "DISCARD ALL\nauth_type = trust", "control character U+000A"),
    ("pgb1", "pgbouncer_listen_addr", "127.0.0.1\nlisten_addr = *", "control character U+000A"),
    ("pgb1", "pgbouncer_listen_addr", "127.0.0.1,*", "has the wildcard '*'"),
    ("pgb1", "pgbouncer_listen_port", float("nan"), "must be an integer from 1 to 65535"),
    ("pgb1", "pgbouncer_listen_port", "\u0663", "must be an integer from 1 to 65535"),
    ("pgb1", "pgbouncer_default_pool_size", 2**40, "must be at most 2147483647"),
    ("pgb1", "database_hold_factor", float("inf"), "must be a finite number"),
    ("pgb1", "database_max_connections", "\u0663\u0663", "must be an integer from 1 to 262143"),
    ("pgb1", "pgbouncer_databases", [{"name": "app\nadmin_users = app"}], "entry 1 name contains"),
    ("cache1", "redis_maxmemory_policy", "allkeys-lru\nloadmodule /tmp/x.so", "must be one of noeviction"),
    ("cache1", "redis_app_command_rules", "+@read\nuser evil on nopass ~* +@all", "control character"),
    ("cache1", "redis_app_command_rules", "allkeys +@all", "command rules only"),
    ("cache1", "redis_listen_addr", "127.0.0.1 -::*", "has the wildcard '-::*'"),
    ("cache1", "redis_memory_share", float("nan"), "must be a finite number"),
    ("web1", "django_workers", True, "must be an integer from 0 to 2147483647"),
    ("web1", "django_demo_bind", "127.0.0.1\u2028", "control character U+2028"),
]


# doctor --offline loads the inventory the same way: a few cases are enough to show it.
CASES = [(["plan"], *case) for case in HOSTILE_INPUTS] + [
    (["doctor", "--offline"], *case) for case in HOSTILE_INPUTS[:: len(HOSTILE_INPUTS) // 3]
]


@pytest.mark.parametrize(("command", "host", "variable", "value", "why"), CASES)
def test_hostile_role_input_exits_65_naming_variable_and_host(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    command: list[str],
    host: str,
    variable: str,
    value: object,
    why: str,
) -> None:
    inventory = yaml.safe_load((FIXTURES / "small.yml").read_text())
    groups = inventory["all"]["children"]
    group = next(g for g in groups.values() if host in g["hosts"])
    group["hosts"][host] = {**(group["hosts"][host] or {}), variable: value}
    path = tmp_path / "hostile.yml"
    path.write_text(yaml.safe_dump(inventory, allow_unicode=False))
    code, out, err = run(capsys, command[0], "-i", str(path), *command[1:])
    assert (code, out) == (65, "")
    assert err.startswith(f"toolkit: inventory: {variable} (host {host}): "), err
    assert why in err
    assert err.count("\n") == 1


def test_a_malformed_auth_user_never_prints_its_password(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "-i", str(FIXTURES / "hostile-auth-user.yml"))
    assert (code, out) == (65, "")
    assert err == (
        "toolkit: inventory: pgbouncer_auth_users (host pgb1): entry 1 has the unknown key(s) nmae; "
        "allowed: name, password, scram_verifier\n"
    )
    assert "hunter2" not in err


# Issue 11 §4: a misspelled variable. django_worker: 8 used to leave web1 at one worker, exit 0.
@pytest.mark.parametrize("command", [["plan"], ["plan", "--format", "json"], ["doctor", "--offline"]])
def test_a_misspelled_variable_exits_65_naming_the_closest_known_one(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    inventory = yaml.safe_load((FIXTURES / "small.yml").read_text())
    web1 = inventory["all"]["children"]["django"]["hosts"]["web1"]
    web1["django_workers"] = 1
    web1["django_worker"] = 8
    path = tmp_path / "misspelled.yml"
    path.write_text(yaml.safe_dump(inventory))
    code, out, err = run(capsys, command[0], "-i", str(path), *command[1:])
    assert (code, out) == (65, "")
    assert err == (
        "toolkit: inventory: django_worker (host web1): is not a variable of the toolkit; "
        "did you mean django_workers? fix the name, or list it in toolkit_extra_variables "
        "if it is your own (docs/inventory.md)\n"
    )


def test_a_variable_of_ones_own_listed_in_toolkit_extra_variables_passes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inventory = yaml.safe_load((FIXTURES / "small.yml").read_text())
    inventory["all"]["vars"]["toolkit_extra_variables"] = ["django_app_*", "redis_team"]
    inventory["all"]["children"]["django"]["hosts"]["web1"]["django_app_release"] = "2026.11"
    inventory["all"]["children"]["redis"]["hosts"]["cache1"]["redis_team"] = "platform"
    path = tmp_path / "own.yml"
    path.write_text(yaml.safe_dump(inventory))
    code, out, err = run(capsys, "plan", "-i", str(path), "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out)["pgbouncer"]["pgb1"]["client_demand"] == 16

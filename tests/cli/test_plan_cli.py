"""``toolkit plan``: exit codes, JSON shape and exact one-line messages, on fixture inventories."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolkit.cli.app import main
from toolkit.domain.errors import SizingError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 1), out, err


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
        "lower it or raise database_max_connections\n"
    )


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


@pytest.mark.parametrize("args", [["plan"], ["plan", "-i", "x", "--format", "yaml"], ["nosuch"]])
def test_usage_errors_exit_64(capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    code, _, err = run(capsys, *args)
    assert code == 64
    assert "Traceback" not in err


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SizingError):
        main(["--debug", "plan", "-i", str(FIXTURES / "infeasible.yml")])

"""The root command: lazy registration, and what a command imports before it does its work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.cli.app import COMMANDS, LazyCommand, load_command, main

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("rich", "psycopg", "redis", "ansible", "yaml")
COMMAND_MODULES = tuple(spec.module for spec in COMMANDS)

# Runs the toolkit in a fresh interpreter and prints the modules it imported (a module imported by
# the test process itself would otherwise hide a regression).
PROBE = """
import contextlib, io, json, sys
from toolkit.cli.app import main
with contextlib.redirect_stdout(io.StringIO()):
    try:
        main(sys.argv[1:])
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def imported_by(*argv: str) -> tuple[int, set[str]]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], cwd=ROOT, capture_output=True, text=True, check=True
    )
    doc = json.loads(proc.stdout)
    return doc["code"], {m.split(".")[0] for m in doc["modules"]} | set(doc["modules"])


@pytest.mark.parametrize("spec", COMMANDS, ids=lambda s: s.name)
def test_summary_is_the_first_line_of_the_command_help(spec: LazyCommand) -> None:
    command = load_command(spec)
    assert command.name == spec.name
    assert (command.help or "").strip().splitlines()[0] == spec.summary


def test_help_lists_every_command_and_imports_none(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    rows = capsys.readouterr().out.split("Commands:")[1].splitlines()
    assert [row.split()[0] for row in rows if row.startswith("  ")] == [spec.name for spec in COMMANDS]
    code, modules = imported_by("--help")
    assert code == 0
    assert not modules & {*HEAVY, *COMMAND_MODULES}


def test_plan_as_json_loads_no_driver_and_no_other_command() -> None:
    code, modules = imported_by("plan", "-i", "inventory/lab", "--format", "json")
    assert code == 0
    assert "toolkit.cli.plan" in modules
    assert not modules & {*HEAVY, *(m for m in COMMAND_MODULES if m != "toolkit.cli.plan")}


def test_a_group_command_resolves_and_shows_its_own_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["runbook", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert " runbook [OPTIONS] COMMAND" in out
    assert {"list", "show", "run"} <= set(out.split("Commands:")[1].split())


def test_an_unknown_command_is_a_usage_error_with_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plna"])
    assert exc.value.code == 64
    assert (
        capsys.readouterr().err.strip()
        == "toolkit: No such command 'plna'. Did you mean 'plan'? (see --help)"
    )

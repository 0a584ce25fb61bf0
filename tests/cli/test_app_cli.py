"""The root command: lazy registration, and what a command imports before it does its work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

import toolkit.runbooks
from toolkit.cli.app import COMMANDS, DISTRIBUTION, LazyCommand, load_command, main, split_debug
from toolkit.domain.errors import InventoryError

ROOT = Path(__file__).resolve().parents[2]
INVENTORIES = ROOT / "tests" / "fixtures" / "inventories"
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


def test_version_comes_from_the_distribution_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"toolkit {version(DISTRIBUTION)} ({DISTRIBUTION})\n"
    assert DISTRIBUTION != "toolkit"  # taken on PyPI by another project


def test_version_imports_no_command() -> None:
    code, modules = imported_by("--version")
    assert code == 0
    assert not modules & {*HEAVY, *COMMAND_MODULES}


@pytest.mark.parametrize(
    "argv",
    [
        ["--debug", "plan", "-i", str(INVENTORIES / "bad-value.yml")],
        ["plan", "-i", str(INVENTORIES / "bad-value.yml"), "--debug"],
        ["plan", "--debug", "-i", str(INVENTORIES / "bad-value.yml")],
    ],
    ids=["before", "after", "between"],
)
def test_debug_shows_the_traceback_wherever_it_stands(argv: list[str]) -> None:
    with pytest.raises(InventoryError, match="database_max_connections"):
        main(argv)


def test_without_debug_the_same_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-i", str(INVENTORIES / "bad-value.yml")])
    assert exc.value.code == 65
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "database_max_connections" in err


def test_debug_after_the_command_changes_nothing_else(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-i", str(INVENTORIES / "small.yml"), "--format", "json", "--debug"])
    assert exc.value.code == 0
    assert json.loads(capsys.readouterr().out)["schema"].startswith("toolkit.plan/")


def test_debug_after_a_double_dash_is_an_argument() -> None:
    assert split_debug(["runbook", "run", "x", "--", "--debug"]) == (
        False,
        ["runbook", "run", "x", "--", "--debug"],
    )


def _complete(words: str) -> list[str]:
    env = {**os.environ, "_TOOLKIT_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split()) - (0 if words.endswith(" ") else 1))
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("toolkit"))],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_shell_completion_completes_commands_options_and_runbook_names() -> None:
    assert _complete("toolkit pl") == ["plan"]
    assert "--format" in _complete("toolkit plan --fo")
    assert _complete("toolkit runbook show pgbouncer-res") == ["pgbouncer-resize-pool", "pgbouncer-resume"]


def test_help_offers_completion_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert {"--install-completion", "--show-completion", "--version", "--debug"} <= set(out.split())


def test_the_lab_is_not_a_command_of_the_installed_toolkit(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["lab", "drill", "all"])
    assert exc.value.code == 64
    assert "No such command 'lab'" in capsys.readouterr().err


def test_runbook_pages_have_one_source_the_docs() -> None:
    """The package reads its pages through toolkit/runbooks/pages, a link to docs/runbooks: no copy."""
    pages = ROOT / "toolkit" / "runbooks" / "pages"
    assert pages.is_symlink()
    assert pages.resolve() == (ROOT / "docs" / "runbooks").resolve()


def test_runbook_show_prints_the_whole_page(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["runbook", "show", "terminate-idle-transactions"])
    assert exc.value.code == 0
    page = (ROOT / "docs" / "runbooks" / "terminate-idle-transactions.md").read_text(encoding="utf-8")
    assert capsys.readouterr().out == page


@pytest.mark.parametrize(
    "name", sorted({*toolkit.runbooks.runbooks(), *(m.name for m in toolkit.runbooks.MANUAL)})
)
def test_runbook_show_states_the_privileges_the_runbook_needs(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["runbook", "show", name])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    section = out.split("## Privileges\n", 1)[1].split("\n## ", 1)[0]
    assert section.strip(), f"{name}: the Privileges section is empty"

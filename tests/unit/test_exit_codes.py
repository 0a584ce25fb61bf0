"""Exit codes are owned by the error classes: one mapping (toolkit.cli.app.ERROR_EXITS), one handler.

Each class is raised inside a tiny typer command run through the real top-level handler
(:func:`toolkit.cli.app.run`), which must print one line on stderr and exit with the class's status;
README's exit-code table must list exactly the mapping's meanings under each code.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from toolkit.adapters.errors import AUTH_HINT, TargetError
from toolkit.adapters.pgbench import PgbenchError
from toolkit.adapters.secrets import ENV, FILES
from toolkit.cli.app import ERROR_EXITS, exit_status, run
from toolkit.cli.status import ExitStatus
from toolkit.domain import errors
from toolkit.domain.errors import (
    FailedError,
    InputDataError,
    InventoryError,
    RefusedError,
    SizingError,
    SizingKind,
    ToolkitError,
    UnreachableError,
    UsageError,
)
from toolkit.domain.runbooks.base import RunbookUsageError

ROOT = Path(__file__).resolve().parents[2]

CASES: list[tuple[ToolkitError, ExitStatus, str]] = [
    (UsageError("needs --format json", "--output"), ExitStatus.USAGE, "Invalid value for '--output': "),
    (UsageError("pick one Redis with --target"), ExitStatus.USAGE, "pick one Redis"),
    (RunbookUsageError("unknown runbook 'nope'"), ExitStatus.USAGE, "unknown runbook"),
    (InputDataError("audit async: x: no Python file could be parsed"), ExitStatus.DATAERR, "audit async"),
    (InventoryError("pgbouncer_processes", "pgb1", "must be 1 or more"), ExitStatus.DATAERR, "inventory: "),
    (SizingError("does not fit", SizingKind.SESSION), ExitStatus.CRITICAL, "does not fit"),
    (RefusedError("60 sessions match, more than --max 50"), ExitStatus.CRITICAL, "60 sessions"),
    (FailedError("doctor: --output f: disk full; nothing written"), ExitStatus.CRITICAL, "doctor: "),
    (UnreachableError("db1: no route"), ExitStatus.UNKNOWN, "db1"),
    (TargetError("pgbouncer@10.0.0.5:6432", "SHOW POOLS", "timed out", "frozen?"), ExitStatus.UNKNOWN, "pgb"),
    (PgbenchError("pgbench not found"), ExitStatus.UNKNOWN, "pgbench not found"),
    (ToolkitError("version unknown"), ExitStatus.UNKNOWN, "version unknown"),
]


def _tiny(raise_it: Callable[[], None]) -> typer.Typer:
    app = typer.Typer(add_completion=False)

    @app.command()
    def go() -> None:
        """A command that only raises."""
        raise_it()

    return app


def _run(capsys: pytest.CaptureFixture[str], app: typer.Typer, argv: list[str]) -> tuple[int, str]:
    with pytest.raises(SystemExit) as done:
        run(app, argv, prog="toolkit")
    code = done.value.code
    assert isinstance(code, int)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("error, status, starts", CASES, ids=lambda v: type(v).__name__)
def test_each_error_class_exits_with_its_status_and_one_line(
    capsys: pytest.CaptureFixture[str], error: ToolkitError, status: ExitStatus, starts: str
) -> None:
    def boom() -> None:
        raise error

    code, err = _run(capsys, _tiny(boom), [])
    assert code == status
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert err.startswith(f"toolkit: {starts}"), err
    assert "Traceback" not in err


def test_a_usage_error_naming_its_flag_points_at_help(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise UsageError("must be above 0", "--window")

    assert _run(capsys, _tiny(boom), []) == (
        64,
        "toolkit: Invalid value for '--window': must be above 0 (see --help)\n",
    )


def test_a_message_of_several_lines_is_printed_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise RefusedError("refused:\n3 sessions match\nnothing was done")

    assert _run(capsys, _tiny(boom), []) == (2, "toolkit: refused: 3 sessions match nothing was done\n")


def test_the_parsers_own_usage_error_is_64(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _run(capsys, _tiny(lambda: None), ["--no-such-flag"])
    assert code == 64 and err.count("\n") == 1 and "--no-such-flag" in err


def test_debug_shows_the_traceback_instead(capsys: pytest.CaptureFixture[str]) -> None:
    def boom() -> None:
        raise RefusedError("nothing changed")

    with pytest.raises(RefusedError):
        run(_tiny(boom), ["--debug"], prog="toolkit")


def test_every_error_class_of_the_domain_has_its_own_entry() -> None:
    """A new error class must be placed in the mapping, not fall through to the base's UNKNOWN."""
    mapped = {e.error for e in ERROR_EXITS}
    classes = {
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type) and issubclass(obj, ToolkitError) and obj.__module__ == errors.__name__
    }
    assert classes - mapped == {InventoryError}  # under InputDataError, the invalid-input entry
    assert exit_status(InventoryError("x", None, "y")) is ExitStatus.DATAERR


def test_subclasses_come_before_their_bases_in_the_mapping() -> None:
    order = [e.error for e in ERROR_EXITS]
    for i, cls in enumerate(order):
        assert not any(issubclass(later, cls) for later in order[i + 1 :]), cls


def _readme_table() -> dict[int, tuple[str, list[str]]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("\n## Exit codes\n", 1)[1].split("\n## ", 1)[0]
    rows: dict[int, tuple[str, list[str]]] = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and re.fullmatch(r"[0-9]+", cells[0]):
            rows[int(cells[0])] = (cells[1], [m for m in cells[2].split("; ") if m])
    return rows


def test_readme_lists_exactly_the_mappings_codes_and_meanings() -> None:
    rows = _readme_table()
    assert sorted(rows) == sorted(int(s) for s in ExitStatus)
    for status in ExitStatus:
        meanings = [e.meaning for e in ERROR_EXITS if e.status is status]
        assert rows[int(status)][1] == meanings, f"README's row {int(status)}"
    for status in (ExitStatus.OK, ExitStatus.WARNING, ExitStatus.CRITICAL, ExitStatus.UNKNOWN):
        assert rows[int(status)][0].startswith(f"{status.name}: ")


def test_a_meaning_is_one_clause_of_the_table() -> None:
    """'; ' separates the meanings in README's cell, so no meaning may contain it."""
    assert all("; " not in e.meaning and "|" not in e.meaning for e in ERROR_EXITS)


def test_the_authentication_hint_names_where_passwords_come_from() -> None:
    err = TargetError.from_exception(
        "postgres@db1:5432", "connecting", Exception("password authentication failed"), 3
    )
    assert err.hint == AUTH_HINT
    assert "password in the inventory" not in str(err) and "and password in the inventory" not in str(err)
    assert "TOOLKIT_SECRETS_DIR" in AUTH_HINT and "--secrets" in AUTH_HINT
    assert all(name.startswith("TOOLKIT_") and name.endswith("_PASSWORD") for name in ENV.values())
    assert set(ENV) == set(FILES)  # every password has a variable and a file in the secrets directory

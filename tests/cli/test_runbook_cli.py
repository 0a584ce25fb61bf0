"""``toolkit runbook run`` with a fake runbook: the plan before the prompt, exit codes (2 for a refusal
by the live state, 64 for a bad command line), skipped actions, the audit log's checks, and server text
that looks like rich markup (``[/]`` in an application_name) printed as it is.

The inventory is real (tests/fixtures/inventories/small.yml, through ansible-inventory); only the
runbook is fake, so nothing here talks to a server.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest

import toolkit.runbooks
from tests.cli.streams import without_inventory_line
from toolkit.cli import runbook as runbook_cli
from toolkit.cli.app import main
from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.runbooks.base import RunContext, RunOptions

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "tests" / "fixtures" / "inventories" / "small.yml")
HOSTILE = "[/]x[bold]"  # an application_name rich would read as markup (and crash on the [/])


@dataclass
class FakeBook:
    """A runbook that plans one action on a session named ``HOSTILE`` and records what it is asked."""

    plan_error: Exception | None = None
    act_error: Exception | None = None
    acted: list[Action] = field(default_factory=list)
    opts: list[RunOptions] = field(default_factory=list)
    INFO: ClassVar[RunbookInfo] = RunbookInfo("fake", "a fake runbook", params=("--older-than",))

    def plan(self, ctx: RunContext, opts: RunOptions) -> RunbookPlan:
        self.opts.append(opts)
        if self.plan_error is not None:
            raise self.plan_error
        action = Action(
            "postgres@127.0.0.1:5432",
            "pg_terminate_backend",
            {"pid": 7, "application_name": HOSTILE},
            f"idle in transaction for 90 s: {HOSTILE}",
            {"backend_start": "t0", "state": "idle in transaction"},
        )
        return RunbookPlan("fake", (action,), (f"note with {HOSTILE}",))

    def act(self, ctx: RunContext, action: Action, opts: RunOptions) -> str:
        self.acted.append(action)
        if self.act_error is not None:
            raise self.act_error
        return f"signalled {HOSTILE}"

    def verify(self, ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
        return True, f"{len(plan.actions)} gone {HOSTILE}"


@pytest.fixture
def book(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeBook:
    fake = FakeBook()
    monkeypatch.setattr(toolkit.runbooks, "find", lambda name: fake)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("TOOLKIT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return fake


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["runbook", "run", "fake", "-i", SMALL, *args])
    out, err = capsys.readouterr()
    code = done.value.code
    assert isinstance(code, int), code
    return code, out, without_inventory_line(err)


def _terminal(monkeypatch: pytest.MonkeyPatch, typed: str) -> None:
    monkeypatch.setattr(runbook_cli, "_interactive", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO(typed + "\n"))


def test_server_text_that_looks_like_markup_is_printed_as_it_is(
    book: FakeBook, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys)
    assert code == 0, err
    assert f"application_name={HOSTILE}" in out
    assert f"note with {HOSTILE}" in out
    assert "dry run: nothing changed" in err


def test_results_with_markup_are_printed_as_they_are(
    book: FakeBook, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "--yes")
    assert code == 0, err
    assert f"-> signalled {HOSTILE}" in out and f"verify: 1 gone {HOSTILE}" in out


def test_the_plan_is_shown_before_the_prompt(
    book: FakeBook, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _terminal(monkeypatch, "n")
    code, out, err = run(capsys)
    assert code == 0
    assert "pg_terminate_backend(pid=7" in out and "act on postgres@127.0.0.1:5432" in out
    assert out.index("pg_terminate_backend(pid=7") < out.index("act on postgres@127.0.0.1:5432")
    assert book.acted == []
    assert "not confirmed: nothing changed" in err


def test_confirmed_on_a_terminal_acts_once_and_prints_the_plan_once(
    book: FakeBook, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _terminal(monkeypatch, "y")
    code, out, _ = run(capsys)
    assert code == 0 and len(book.acted) == 1
    assert out.count("pg_terminate_backend(pid=7") == 2  # once in the plan, once in "done: ..."
    assert out.index("act on") < out.index("done: ")


def test_with_json_the_plan_before_the_prompt_goes_to_stderr(
    book: FakeBook, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _terminal(monkeypatch, "y")
    code, out, err = run(capsys, "--format", "json")
    assert code == 0
    doc = json.loads(out)  # stdout is one document
    assert doc["results"][0]["result"] == f"signalled {HOSTILE}"
    assert "pg_terminate_backend(pid=7" in err and "act on" in err


def test_a_refusal_by_the_live_state_exits_2(book: FakeBook, capsys: pytest.CaptureFixture[str]) -> None:
    book.plan_error = RefusedError("fake: 60 sessions match, more than --max 50; nothing was done")
    code, out, err = run(capsys, "--yes")
    assert (code, out) == (2, "")
    assert err == "toolkit: fake: 60 sessions match, more than --max 50; nothing was done\n"


def test_a_bad_request_exits_64(book: FakeBook, capsys: pytest.CaptureFixture[str]) -> None:
    book.plan_error = RunbookUsageError("fake needs --older-than (for example 60s)")
    code, _, err = run(capsys, "--yes")
    assert code == 64 and err.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--timeout", "nan"), "--timeout: 'nan' is not a number such as 5 or 2.5"),
        (("--timeout", "inf"), "--timeout: 'inf' is not a number"),
        (("--timeout", "0"), "--timeout: '0' must be above 0"),
        (("--timeout", "1e999"), "--timeout: '1e999' is not a number"),
        (("--timeout", "\u0665"), "--timeout: '\u0665' is not a number"),
        (("--rate", "-1"), "--rate: '-1' is not a number"),
        (("--older-than", "0s"), "--older-than: '0s' must be above 0 s"),
        (("--older-than", "-5m"), "--older-than: '-5m' is not a duration"),
        (("--older-than", "\uff15m"), "is not a duration"),
        (("--older-than", "9" * 40), "is not a duration"),
        (("--grace", "nan"), "--grace: 'nan' is not a duration"),
        (("--max", "0"), "--max: '0' must be between 1 and 100000"),
        (("--max", "50.5"), "--max: '50.5' is not a whole number"),
        (("--max", "99999999999999999999"), "is not a whole number"),
        (("--size", "-3"), "--size: '-3' is not a whole number"),
        (("--size", "10000000"), "--size: '10000000' must be between 1 and 262143"),
        (("--version", "nan"), "--version: 'nan' is not a whole number"),
    ],
)
def test_number_flags_are_refused_with_one_line_and_64(
    book: FakeBook, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    code, out, err = run(capsys, *args, "--yes")
    assert (code, out) == (64, "")
    assert err.count("\n") == 1 and message in err, err
    assert book.opts == [] and book.acted == []


def test_a_skipped_action_is_reported_and_audited(
    book: FakeBook, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    book.act_error = ActionSkipped("pid 7 not signalled: the session runs another query now")
    code, out, err = run(capsys, "--yes", "--format", "json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["results"] == []
    assert doc["skipped"][0]["result"] == "skipped: pid 7 not signalled: the session runs another query now"
    records = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["intent", "outcome"]
    assert records[1]["result"].startswith("skipped: pid 7")
    assert records[0]["guard"] == {"backend_start": "t0", "state": "idle in transaction"}


@pytest.mark.parametrize("log", ["/dev/null", "fifo", "dir"])
def test_an_audit_log_that_is_not_a_regular_file_is_refused_before_acting(
    book: FakeBook, capsys: pytest.CaptureFixture[str], tmp_path: Path, log: str
) -> None:
    path = {"/dev/null": Path("/dev/null"), "fifo": tmp_path / "fifo", "dir": tmp_path}[log]
    if log == "fifo":
        os.mkfifo(path)
    code, out, err = run(capsys, "--yes", "--audit-log", str(path))
    assert (code, out) == (64, "")
    assert f"audit log {path}: " in err and "not a regular file; nothing was done" in err
    assert book.acted == []


def test_the_options_reach_the_runbook(book: FakeBook, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(
        capsys,
        "--older-than",
        "90s",
        "--max",
        "7",
        "--include-bypass-roles",
        "--timeout",
        "2.5",
        "--rate",
        "20",
    )
    assert code == 0
    (opts,) = book.opts
    assert (opts.older_than, opts.max_sessions, opts.include_bypass, opts.include_toolkit, opts.rate) == (
        90.0,
        7,
        True,
        False,
        20.0,
    )

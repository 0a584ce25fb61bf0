"""``toolkit runbook run`` hands --max-client-conn and --role to the runbook, and refuses a malformed
--max-client-conn with one line and exit 64 before any runbook plans (a fake runbook, no server)."""

from __future__ import annotations

from pathlib import Path

import pytest

import toolkit.runbooks
from tests.cli.test_runbook_cli import FakeBook, run


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeBook:
    book = FakeBook()
    monkeypatch.setattr(toolkit.runbooks, "find", lambda name: book)
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setenv("TOOLKIT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return book


def test_the_options_reach_the_runbook(fake: FakeBook, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "--max-client-conn", "200", "--role", "cron")
    assert code == 0, err
    (opts,) = fake.opts
    assert (opts.max_client_conn, opts.role) == (200, "cron")


def test_without_them_the_runbook_gets_none(fake: FakeBook, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 0, err
    (opts,) = fake.opts
    assert (opts.max_client_conn, opts.role) == (None, None)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("0", "--max-client-conn: '0' must be between 1 and 1048576"),
        ("2000000", "--max-client-conn: '2000000' must be between 1 and 1048576"),
        ("-5", "--max-client-conn: '-5' is not a whole number"),
        ("1e3", "--max-client-conn: '1e3' is not a whole number"),
        ("200.5", "--max-client-conn: '200.5' is not a whole number"),
        ("\u0662\u0660\u0660", "is not a whole number"),
        ("nan", "is not a whole number"),
    ],
)
def test_a_malformed_max_client_conn_is_refused_with_one_line_and_64(
    fake: FakeBook, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    code, out, err = run(capsys, "--max-client-conn", value, "--yes")
    assert (code, out) == (64, "")
    assert err.count("\n") == 1 and message in err, err
    assert fake.opts == [] and fake.acted == []

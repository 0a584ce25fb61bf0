"""The audit log on a real file system: intent before the action and fsynced, outcome after; only a
regular file (never /dev/null, a FIFO, a directory or a link to one); the operator as the OS knows it."""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path
from typing import Any

import pytest

from toolkit.adapters import audit
from toolkit.domain.runbooks.base import Action, ActionSkipped, RunbookUsageError
from toolkit.runbooks.base import RunContext, audited
from toolkit.runbooks.execute import with_audit


def _ctx(path: Path) -> RunContext:
    return with_audit(RunContext(None, None, (), None, 1.0, None, path))  # type: ignore[arg-type]


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


ACTION = Action("postgres@x:5432", "pg_terminate_backend", {"pid": 7}, "idle", {"backend_start": "t0"})


def test_the_intent_is_on_disk_before_the_action_and_the_outcome_after(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    seen: list[list[dict[str, Any]]] = []

    def act() -> str:
        seen.append(_records(log))  # what a crash here would leave behind
        return "signalled"

    assert audited(_ctx(log), "terminate-idle-transactions", ACTION, act) == "signalled"
    ((intent,),) = seen
    assert intent["phase"] == "intent" and "result" not in intent
    assert intent["guard"] == {"backend_start": "t0"}
    first, second = _records(log)
    assert first == intent
    assert second["phase"] == "outcome" and second["result"] == "signalled"
    assert second["id"] == intent["id"]
    assert (second["runbook"], second["action"], second["parameters"]) == (
        "terminate-idle-transactions",
        "pg_terminate_backend",
        {"pid": 7},
    )
    assert oct(log.stat().st_mode & 0o777) == "0o600"


def test_each_record_is_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    audited(_ctx(tmp_path / "a.jsonl"), "rb", ACTION, lambda: "ok")
    assert len(synced) >= 2  # the intent and the outcome (and the new file's directory)


def test_skipped_and_failed_outcomes_are_recorded(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"

    def skip() -> str:
        raise ActionSkipped("pid 7 not signalled: the session runs another query now")

    def fail() -> str:
        raise RuntimeError("boom")

    with pytest.raises(ActionSkipped):
        audited(_ctx(log), "rb", ACTION, skip)
    with pytest.raises(RuntimeError):
        audited(_ctx(log), "rb", ACTION, fail)
    outcomes = [r["result"] for r in _records(log) if r["phase"] == "outcome"]
    assert outcomes == ["skipped: pid 7 not signalled: the session runs another query now", "failed: boom"]


def test_records_name_the_uid_and_the_os_login_beside_sudo_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.setenv("USER", "mallory")  # the environment does not say who the OS says we are
    monkeypatch.setenv("LOGNAME", "mallory")
    log = tmp_path / "audit.jsonl"
    audited(_ctx(log), "rb", ACTION, lambda: "ok")
    for record in _records(log):
        assert record["uid"] == os.getuid()
        assert record["login"] == pwd.getpwuid(os.getuid()).pw_name
        assert record["sudo_user"] == "alice"
        assert record["operator"].startswith(pwd.getpwuid(os.getuid()).pw_name + "@")
        assert "mallory" not in json.dumps(record)


def _fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    os.mkfifo(path)
    return path


def _dir(tmp_path: Path) -> Path:
    path = tmp_path / "dir"
    path.mkdir()
    return path


def _link(target: Path, tmp_path: Path) -> Path:
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    return link


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda tmp: Path("/dev/null"), "a character device"),
        (_fifo, "a FIFO"),
        (_dir, "a directory"),
        (lambda tmp: _link(Path("/dev/null"), tmp), "a character device"),
        (lambda tmp: _link(_fifo(tmp), tmp), "a FIFO"),
        (lambda tmp: _link(_dir(tmp), tmp), "a directory"),
    ],
)
def test_only_a_regular_file_is_accepted(tmp_path: Path, make: Any, kind: str) -> None:
    path = make(tmp_path)
    with pytest.raises(
        RunbookUsageError, match=f"audit log {path}: {kind}, not a regular file; nothing was done"
    ):
        audit.check(path)
    ran: list[bool] = []
    with pytest.raises(RunbookUsageError, match="not a regular file"):
        audited(_ctx(path), "rb", ACTION, lambda: str(ran.append(True)))
    assert ran == []  # the action never ran


def test_a_link_to_a_regular_file_and_a_new_file_are_accepted(tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("")
    audit.check(_link(real, tmp_path))
    fresh = tmp_path / "new" / "dir" / "audit.jsonl"
    audit.check(fresh)
    assert fresh.is_file() and oct(fresh.parent.stat().st_mode & 0o777) == "0o700"

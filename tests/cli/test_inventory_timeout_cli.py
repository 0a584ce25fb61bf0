"""Issue 13 §8: the ``ansible-inventory`` timeout is shown in ``--help`` and set by TOOLKIT_INVENTORY_TIMEOUT.

A fake ``ansible-inventory`` on PATH (the toolkit takes the one beside its Python first, so the test
points ``sys.executable`` at an empty directory) sleeps before it answers: past the timeout the command
fails in one line with exit 65 (the inventory could not be read) and names the variable to raise; with
more seconds the same fake's answer is read.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from toolkit.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = ROOT / "tests" / "fixtures" / "inventories" / "small.yml"
# Every command that reads an inventory, as the user types it.
READERS = (
    ("plan",),
    ("doctor",),
    ("watch",),
    ("calibrate",),
    ("audit", "queries"),
    ("runbook", "run"),
)
ANSWER = {"_meta": {"hostvars": {}}, "all": {"children": ["ungrouped"]}, "ungrouped": {"hosts": []}}


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def slow_inventory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ansible-inventory on PATH that takes 2 s, then prints an empty inventory's JSON."""
    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    answer = tmp_path / "answer.json"
    answer.write_text(json.dumps(ANSWER))
    fake = fake_bin / "ansible-inventory"
    fake.write_text(f"#!/bin/sh\nsleep 2\nexec cat {answer}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    no_python_here = tmp_path / "no-venv" / "python"  # nothing beside it: PATH decides
    monkeypatch.setattr(sys, "executable", str(no_python_here))
    return fake


@pytest.mark.parametrize("command", READERS, ids=" ".join)
def test_every_inventory_reader_shows_the_timeout_in_help(
    capsys: pytest.CaptureFixture[str], command: tuple[str, ...]
) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    text = " ".join(out.split())
    assert "TOOLKIT_INVENTORY_TIMEOUT seconds (default 60; past it, exit 65)" in text


def test_past_the_timeout_the_read_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], slow_inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_INVENTORY_TIMEOUT", "0.5")
    code, out, err = run(capsys, "plan", "-i", str(INVENTORY), "--format", "json")
    assert (code, out) == (65, "")
    assert err == (
        f"toolkit: inventory: inventory: {INVENTORY}: ansible-inventory took over 0.5 s; "
        "set TOOLKIT_INVENTORY_TIMEOUT to more seconds for a large or slow inventory\n"
    )


def test_more_seconds_let_the_same_inventory_be_read(
    capsys: pytest.CaptureFixture[str], slow_inventory: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TOOLKIT_INVENTORY_TIMEOUT", "30")
    code, _, err = run(capsys, "plan", "-i", str(INVENTORY), "--format", "json")
    # The fake's inventory is empty: read, then refused as a topology with no PgBouncer host (not a timeout).
    assert "took over" not in err
    assert code == 65 and "the 'pgbouncer' group has no hosts" in err


@pytest.mark.parametrize("value", ["abc", "0", "-5", "inf", "nan"])
def test_a_bad_timeout_is_refused_in_one_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("TOOLKIT_INVENTORY_TIMEOUT", value)
    code, out, err = run(capsys, "plan", "-i", str(INVENTORY))
    assert (code, out) == (65, "")
    assert err == (
        f"toolkit: inventory: TOOLKIT_INVENTORY_TIMEOUT: {value!r} is not a number of seconds above 0; "
        "set it to e.g. 120, or unset it\n"
    )

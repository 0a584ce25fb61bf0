"""``toolkit audit async``: exit codes, the JSON document, one-line errors."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.cli.app import main

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "async_corpus"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["audit", "async", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_clean_code_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(CORPUS / "negative"), "--format", "json")
    assert code == 0
    assert json.loads(out) == {"schema": "toolkit.audit/v1", "status": "ok", "findings": []}


def test_findings_exit_1_with_the_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, str(CORPUS / "positive" / "cache_calls.py"), "-f", "json")
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["schema"] == "toolkit.audit/v1" and doc["status"] == "warning"
    first = doc["findings"][0]
    assert set(first) == {"id", "severity", "target", "summary", "evidence", "remedy", "runbook"}
    assert first["id"] == "async.blocking_call" and first["severity"] == "warning"
    assert set(first["evidence"]) == {"file", "line", "function", "call"}
    assert first["target"] == f"{first['evidence']['file']}:{first['evidence']['line']}"
    assert first["evidence"]["call"] == "cache.get" and "cache.aget" in first["remedy"]


def test_table_names_the_finding(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, str(CORPUS / "positive" / "cache_calls.py"))
    assert code == 1
    assert "async.blocking_call" in out and "cache_calls.py:8" in out


def test_missing_path_is_a_usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, str(tmp_path / "nope"))
    assert code == 64
    assert err == f"toolkit: audit async: {tmp_path / 'nope'}: no such file or directory\n"


def test_unparsable_files_are_one_line_each_and_nothing_parsed_is_65(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "broken.py").write_text("async def (:\n")
    (tmp_path / "latin.py").write_bytes(b"x = '\xff'\n")
    code, _, err = _run(capsys, str(tmp_path))
    assert code == 65
    lines = err.splitlines()
    assert lines[0].startswith(f"toolkit: audit async: {tmp_path / 'broken.py'}:1: cannot parse (")
    assert (
        lines[1]
        == f"toolkit: audit async: {tmp_path / 'latin.py'}: cannot read (UnicodeDecodeError); skipped"
    )
    assert lines[2] == f"toolkit: audit async: {tmp_path}: no Python file could be parsed"


def test_a_broken_file_does_not_stop_the_others(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("def (:\n")
    (tmp_path / "ok.py").write_text("import time\n\nasync def v():\n    time.sleep(1)\n")
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "0001.py").write_text("import time\n\nasync def m():\n    time.sleep(1)\n")
    code, out, err = _run(capsys, str(tmp_path), "-f", "json")
    assert code == 1
    assert [f["target"] for f in json.loads(out)["findings"]] == [f"{tmp_path / 'ok.py'}:4"]
    assert len(err.splitlines()) == 1 and "broken.py:1: cannot parse" in err


# Bounded reads. Each case runs the real command in a subprocess with a timeout, so a regression
# that blocks on a FIFO or reads /dev/zero for ever fails the test instead of hanging the suite.
BLOCKING = "import time\n\nasync def v():\n    time.sleep(1)\n"


def _cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "toolkit", "audit", "async", *args, "-f", "json"],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_a_fifo_named_py_is_skipped_not_waited_on(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text(BLOCKING)
    os.mkfifo(tmp_path / "x.py")
    done = _cli(str(tmp_path))
    assert done.returncode == 1, done.stderr
    assert f"toolkit: audit async: {tmp_path / 'x.py'}: a FIFO; skipped" in done.stderr.splitlines()
    assert [f["target"] for f in json.loads(done.stdout)["findings"]] == [f"{tmp_path / 'ok.py'}:4"]


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/urandom", "/etc/hostname"])
def test_a_link_named_py_is_not_followed(tmp_path: Path, target: str) -> None:
    (tmp_path / "ok.py").write_text(BLOCKING)
    (tmp_path / "zero.py").symlink_to(target)
    done = _cli(str(tmp_path))
    assert done.returncode == 1, done.stderr
    expected = f"toolkit: audit async: {tmp_path / 'zero.py'}: a symbolic link (not followed); skipped"
    assert expected in done.stderr.splitlines()


def test_a_linked_directory_out_of_the_tree_is_not_entered(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text(BLOCKING)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "ok.py").write_text("x = 1\n")
    (tree / "linked").symlink_to(outside)
    done = _cli(str(tree))
    assert done.returncode == 0, done.stderr
    assert "secret.py" not in done.stdout + done.stderr


def test_a_device_given_as_the_path_is_refused(tmp_path: Path) -> None:
    done = _cli("/dev/zero")
    assert done.returncode == 65
    assert done.stderr.splitlines() == [
        "toolkit: audit async: /dev/zero: a device; skipped",
        "toolkit: audit async: /dev/zero: no Python file could be parsed",
    ]


def test_a_file_above_the_cap_is_skipped_and_the_cap_can_be_raised(tmp_path: Path) -> None:
    big = tmp_path / "big.py"
    big.write_text(BLOCKING + "#" * 2000 + "\n")
    (tmp_path / "ok.py").write_text("x = 1\n")
    size = big.stat().st_size
    capped = _cli(str(tmp_path), "--max-bytes", "1000")
    assert capped.returncode == 0
    why = f"{size} bytes, above the cap of 1000 (raise it with --max-bytes); skipped"
    assert f"toolkit: audit async: {big}: {why}" in capped.stderr.splitlines()
    raised = _cli(str(tmp_path), "--max-bytes", str(size))
    assert raised.returncode == 1 and raised.stderr == ""


@pytest.mark.parametrize("value", ["0", "-1", "nan", "1e9", "\u0661", str(2**40)])
def test_max_bytes_must_be_a_plain_number(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, value: str
) -> None:
    code, out, err = _run(capsys, str(tmp_path), "--max-bytes", value)
    assert (code, out) == (64, "")
    assert err.startswith("toolkit: Invalid value for '--max-bytes': must be a whole number from 1 to")


@pytest.mark.parametrize(
    ("name", "source", "reason"),
    [
        ("unary.py", "x = " + "-" * 200_000 + "1\n", "nested too deeply: MemoryError"),
        ("binop.py", "x = 1" + "+1" * 200_000 + "\n", "nested too deeply: RecursionError"),
        ("parens.py", "x = " + "(" * 300 + "1" + ")" * 300 + "\n", "too many nested parentheses"),
        ("nul.py", "x = 1\0\n", "null bytes"),
    ],
)
def test_hostile_source_is_skipped_with_the_reason_and_the_rest_is_read(
    tmp_path: Path, name: str, source: str, reason: str
) -> None:
    (tmp_path / name).write_text(source)
    (tmp_path / "ok.py").write_text(BLOCKING)
    done = _cli(str(tmp_path))
    assert done.returncode == 1, done.stderr
    (line,) = [x for x in done.stderr.splitlines() if name in x]
    assert line.startswith(f"toolkit: audit async: {tmp_path / name}") and reason in line, line
    assert line.endswith("; skipped") and "Traceback" not in done.stderr


def test_progress_goes_to_stderr_only_on_a_terminal(tmp_path: Path) -> None:
    (tmp_path / "ok.py").write_text("x = 1\n")
    done = _cli(str(tmp_path))
    assert done.stderr == ""  # not a terminal: no progress line
    primary, secondary = pty.openpty()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "toolkit", "audit", "async", str(tmp_path), "-f", "json"],
            stdout=subprocess.PIPE,
            stderr=secondary,
            timeout=60,
            check=False,
        )
        os.close(secondary)
        secondary = -1
        shown = b""
        with contextlib.suppress(OSError):
            while chunk := os.read(primary, 4096):
                shown += chunk
    finally:
        os.close(primary)
        if secondary != -1:
            os.close(secondary)
    assert proc.returncode == 0
    assert b"1/1 " in shown and b"ok.py" in shown
    assert json.loads(proc.stdout)["findings"] == []

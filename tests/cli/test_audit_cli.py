"""``toolkit audit async``: exit codes, the JSON document, one-line errors."""

from __future__ import annotations

import json
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

"""The tool runner (toolkit/adapters/tool.py) with real small subprocesses: output, one masked error line."""

from __future__ import annotations

import sys

import pytest

from toolkit.adapters import tool


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_the_output_of_a_tool_that_succeeds() -> None:
    assert tool.output(py("print('hello')"), 30) == "hello\n"
    assert tool.output(py("import sys; print(sys.stdin.read().upper())"), 30, stdin="abc") == "ABC\n"


def test_a_failure_carries_the_first_meaningful_line_masked() -> None:
    code = (
        "import sys; sys.stderr.write('WARNING: noise\\n"
        "psql: error: connection to server at db1 failed: password=hunter2 url postgresql://a:s3cret@db1/x\\n"
        "next line\\n'); sys.exit(2)"
    )
    with pytest.raises(tool.ToolError) as err:
        tool.run(py(code), 30, secrets=["hunter2"])
    assert err.value.status == 2 and not err.value.timed_out
    assert err.value.cause == (
        "psql: error: connection to server at db1 failed: password=**** url postgresql://a:****@db1/x"
    )
    assert "hunter2" not in str(err.value) and "s3cret" not in str(err.value)
    assert "\n" not in str(err.value)


def test_a_silent_failure_names_its_status() -> None:
    with pytest.raises(tool.ToolError, match=r"exited with status 3$"):
        tool.run(py("raise SystemExit(3)"), 30)


def test_without_check_the_caller_reads_the_status() -> None:
    done = tool.run(py("import sys; sys.stderr.write('x'); sys.exit(4)"), 30, check=False)
    assert (done.returncode, done.stderr) == (4, "x")


def test_a_tool_past_its_time_limit_is_stopped() -> None:
    with pytest.raises(tool.ToolError) as err:
        tool.run(py("import time; time.sleep(60)"), 0.5)
    assert err.value.timed_out and err.value.cause == "timed out after 0.5 s"


def test_a_tool_that_does_not_exist() -> None:
    with pytest.raises(tool.ToolError) as err:
        tool.run(["/nonexistent/psql", "-c", "select 1"], 5)
    assert str(err.value) == "psql: cannot run /nonexistent/psql (No such file or directory)"
    assert err.value.why == "No such file or directory" and err.value.status is None


def test_a_long_line_is_cut() -> None:
    line = tool.first_error_line("error: " + "x" * 1000)
    assert len(line) == 300 and line.endswith("...")

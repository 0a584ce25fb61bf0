"""Run an outside tool (ssh, psql, pgbench, an interpreter) and report its failure in one masked line.

Every tool the toolkit runs goes through :func:`run`: a fixed argument list, no shell, a time limit,
and on failure a :class:`ToolError` carrying the tool's first meaningful error line (not a Python
traceback, not a list repr of stderr), with passwords masked (toolkit/domain/secrets.py): tools echo
connection strings and ``password=`` pairs back in their errors. Callers turn a ToolError into their
own error (InventoryError, TargetError, PgbenchError) with the hint that fits.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from toolkit.domain.errors import FailedError
from toolkit.domain.secrets import mask_text

# Words that mark the line saying why a tool failed, among warnings, banners and stack lines.
_CAUSE = re.compile(r"error|fail|fatal|could not|cannot|can't|denied|refused|no such|not found|invalid", re.I)
_PREFIX = re.compile(r"^\[(WARNING|ERROR)\]:\s*")  # Ansible's level prefix
_MAX = 300  # characters of one line kept in a message


class ToolError(FailedError):
    """A tool could not start, ran past its time limit, or exited with a status it should not have."""

    def __init__(
        self, tool: str, cause: str, status: int | None = None, timed_out: bool = False, why: str = ""
    ) -> None:
        self.tool = tool
        self.cause = cause
        self.why = why or cause  # the bare reason ("No such file or directory"), for callers' own wording
        self.status = status  # the exit status; None when it did not start or was stopped
        self.timed_out = timed_out
        super().__init__(f"{tool}: {cause}")


def first_error_line(text: str, secrets: Collection[str] = ()) -> str:
    """The line of a tool's stderr that says why it failed, masked; else its last line; "" when empty.

    >>> first_error_line("WARNING: x\\npsql: error: connection to server failed: password=s3cret\\nbye")
    'psql: error: connection to server failed: password=****'
    >>> first_error_line("[ERROR]: Unable to parse /inv as an inventory source")
    'Unable to parse /inv as an inventory source'
    >>> first_error_line("one\\nlast"), first_error_line("  \\n")
    ('last', '')
    """
    lines = [_PREFIX.sub("", ln.strip()) for ln in text.splitlines() if ln.strip()]
    line = next((ln for ln in lines if _CAUSE.search(ln)), lines[-1] if lines else "")
    line = mask_text(line, secrets)
    return line if len(line) <= _MAX else line[: _MAX - 3] + "..."


def run(
    argv: Sequence[str],
    timeout: float,
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    check: bool = True,
    secrets: Collection[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (no shell) within ``timeout`` s; with ``check``, a non-zero exit is a ToolError.

    Without ``check`` the finished process is returned whatever its status (the caller reads it);
    a tool that cannot start or runs too long is a ToolError either way.
    """
    tool = Path(argv[0]).name
    try:
        done = subprocess.run(  # noqa: S603 (argument lists built by the callers, never a shell string)
            list(argv),
            input=stdin,
            env=None if env is None else dict(env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ToolError(tool, f"timed out after {timeout:g} s", timed_out=True) from None
    except OSError as exc:
        why = exc.strerror or str(exc)
        raise ToolError(tool, f"cannot run {argv[0]} ({why})", why=why) from None
    if check and done.returncode != 0:
        line = first_error_line(done.stderr, secrets) or first_error_line(done.stdout, secrets)
        raise ToolError(tool, line or f"exited with status {done.returncode}", done.returncode)
    return done


def output(
    argv: Sequence[str],
    timeout: float,
    *,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    secrets: Collection[str] = (),
) -> str:
    """The standard output of ``argv``, which must succeed (else a :class:`ToolError`)."""
    return run(argv, timeout, stdin=stdin, env=env, secrets=secrets).stdout

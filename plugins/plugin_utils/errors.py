# Generated from toolkit/domain/errors.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/errors.py and run `python scripts/generate_plugin_utils.py`.
"""Errors the domain raises; the CLI maps them to exit codes, the filter plugin to Ansible errors."""

from __future__ import annotations


class ToolkitError(Exception):
    """Base of every error the toolkit reports as one line instead of a traceback."""


class InventoryError(ToolkitError):
    """A variable in the inventory is missing, of the wrong type or out of range (exit 65)."""

    def __init__(self, variable: str, host: str | None, why: str) -> None:
        self.variable = variable
        self.host = host
        self.why = why
        where = f" (host {host})" if host else ""
        super().__init__(f"inventory: {variable}{where}: {why}")


class SizingError(ToolkitError):
    """The topology cannot fit the database: the message names the numbers and what to change (exit 2).

    ``kind`` says which rule failed (budget, session, headroom, client_conn, routing, override), so
    doctor can report it under the matching capacity finding.
    """

    def __init__(self, message: str, kind: str = "budget") -> None:
        self.kind = kind
        super().__init__(message)


class RefusedError(ToolkitError):
    """A runbook refused because of the live state it read, and changed nothing (exit 2, CRITICAL).

    Open transactions that would hold a PAUSE, a pool size beyond the budget, more sessions than
    ``--max``, a cache prefix that also matches another namespace. A malformed command line is a
    RunbookError instead (exit 64).
    """

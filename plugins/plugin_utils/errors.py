# Generated from toolkit/domain/errors.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/errors.py and run `python scripts/generate_plugin_utils.py`.
"""Errors the toolkit reports as one line; each class stands for one exit status.

The CLI's top-level handler (:data:`toolkit.cli.app.ERROR_EXITS`) maps each class to its exit status
and meaning, in one place, and the README's exit-code table is checked against that mapping. The
filter plugin turns a :class:`SizingError` into an Ansible error.
"""

from __future__ import annotations

import enum


class ToolkitError(Exception):
    """Base of every error the toolkit reports as one line instead of a traceback (exit 3 if no subclass)."""


class UsageError(ToolkitError):
    """A bad command line: a malformed or missing flag, an unknown name; nothing changed (exit 64).

    ``param`` names the flag when one flag is wrong: the line reads ``Invalid value for '--x': ...``,
    as the parser's own errors do.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(f"Invalid value for {param!r}: {message}" if param else message)


class InputDataError(ToolkitError):
    """The input data is invalid: the inventory, settings or a config file (exit 65)."""


class InventoryError(InputDataError):
    """A variable in the inventory is missing, of the wrong type or out of range (exit 65)."""

    def __init__(self, variable: str, host: str | None, why: str) -> None:
        self.variable = variable
        self.host = host
        self.why = why
        where = f" (host {host})" if host else ""
        super().__init__(f"inventory: {variable}{where}: {why}")


class SizingKind(enum.StrEnum):
    """Which sizing rule refused the topology; doctor reports each under its capacity finding."""

    BUDGET = "budget"
    SESSION = "session"
    HEADROOM = "headroom"
    CLIENT_CONN = "client_conn"
    ROUTING = "routing"
    OVERRIDE = "override"


class SizingError(ToolkitError):
    """The topology cannot fit the database: the message names the numbers and what to change (exit 2).

    ``kind`` says which rule failed, so doctor can report it under the matching capacity finding.
    """

    def __init__(self, message: str, kind: SizingKind = SizingKind.BUDGET) -> None:
        self.kind = SizingKind(kind)
        super().__init__(message)


class RefusedError(ToolkitError):
    """A runbook refused because of the live state it read, and changed nothing (exit 2, CRITICAL).

    Open transactions that would hold a PAUSE, a pool size beyond the budget, more sessions than
    ``--max``, a cache prefix that also matches another namespace. A malformed command line is a
    :class:`UsageError` instead (exit 64).
    """


class FailedError(ToolkitError):
    """An action ran and failed, or its effect could not be verified (exit 2, CRITICAL)."""


class UnreachableError(ToolkitError):
    """A target could not be reached or read, or a tool the command runs is missing (exit 3, UNKNOWN)."""

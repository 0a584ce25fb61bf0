"""Exit codes: an interface others depend on (Nagios-compatible, plus sysexits for bad input)."""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What the toolkit's exit code means."""

    OK = 0
    WARNING = 1
    CRITICAL = 2  # also: the plan is infeasible
    UNKNOWN = 3  # a target could not be checked
    USAGE = 64  # EX_USAGE: bad command line
    DATAERR = 65  # EX_DATAERR: invalid inventory, settings or config

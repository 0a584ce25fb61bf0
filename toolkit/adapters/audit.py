"""The audit log: one JSON line per runbook action, appended; never a secret in it.

Path: ``--audit-log PATH``, else ``$TOOLKIT_AUDIT_LOG``, else ``/var/log/toolkit/audit.jsonl`` when
running as root, else ``~/.local/state/toolkit/audit.jsonl``. The file is created mode 0600 in a
directory of mode 0700, and written with O_APPEND so concurrent runs never interleave a line.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


def audit_path(explicit: str | None) -> Path:
    """Where records go."""
    chosen = explicit or os.environ.get("TOOLKIT_AUDIT_LOG")
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/log/toolkit/audit.jsonl")
    return Path.home() / ".local" / "state" / "toolkit" / "audit.jsonl"


def operator() -> str:
    """Who acted: the login name (SUDO_USER when run through sudo) and the host."""
    who = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"{who}@{socket.gethostname()}"


def append(
    path: Path,
    *,
    target: str,
    action: str,
    parameters: dict[str, Any],
    result: str,
    runbook: str,
    detail: str = "",
) -> dict[str, Any]:
    """Append one record and return it."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "operator": operator(),
        "runbook": runbook,
        "target": target,
        "action": action,
        "parameters": parameters,
        "result": result,
        "detail": detail,
    }
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (json.dumps(record, default=str) + "\n").encode())
    finally:
        os.close(fd)
    return record

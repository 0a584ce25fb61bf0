"""The audit log: JSON lines, appended; an intent record before each action, its outcome after.

Path: ``--audit-log PATH``, else ``$TOOLKIT_AUDIT_LOG``, else ``/var/log/toolkit/audit.jsonl`` when
running as root, else ``~/.local/state/toolkit/audit.jsonl``. The file is created mode 0600 in a
directory of mode 0700, and written with O_APPEND so concurrent runs never interleave a line.

The intent record is fsynced before the action starts, so a crash or a kill during the action still
leaves a trace of what was about to be done; the outcome record (same ``id``) follows. The log must be a
regular file: ``/dev/null``, a FIFO, a directory or a link to one of them would swallow the records
(or block the run), so :func:`check` refuses them before the first action, and every write checks the
opened file again. Records name the operator by the numeric uid and the OS login name of that uid
(``pwd``, not ``$USER``), beside ``SUDO_USER`` when set. Never a secret in a record.
"""

from __future__ import annotations

import json
import os
import pwd
import socket
import stat
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit.domain.runbooks.base import RunbookUsageError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def audit_path(explicit: str | None) -> Path:
    """Where records go."""
    chosen = explicit or os.environ.get("TOOLKIT_AUDIT_LOG")
    if chosen:
        return Path(chosen)
    if os.geteuid() == 0:
        return Path("/var/log/toolkit/audit.jsonl")
    return Path.home() / ".local" / "state" / "toolkit" / "audit.jsonl"


def who() -> dict[str, Any]:
    """The operator as the OS knows it: uid, that uid's login name, SUDO_USER if set, and the host."""
    uid = os.getuid()
    try:
        login: str | None = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid without a passwd entry (containers): the number still says who
        login = None
    host = socket.gethostname()
    return {
        "operator": f"{login or uid}@{host}",
        "uid": uid,
        "login": login,
        "sudo_user": os.environ.get("SUDO_USER") or None,
        "host": host,
    }


def _refuse(path: Path, what: str) -> RunbookUsageError:
    return RunbookUsageError(
        f"audit log {path}: {what}, not a regular file; nothing was done: point --audit-log "
        "(or TOOLKIT_AUDIT_LOG) at a file"
    )


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _open(path: Path) -> int:
    """Open ``path`` for appending, created 0600; refuse anything but a regular file, before and after."""
    try:
        before = os.stat(path)  # follows links: a link to /dev/null is refused as what it points to
    except FileNotFoundError:
        before = None
    except OSError as exc:
        raise _refuse(path, f"cannot be read ({exc.strerror})") from None
    if before is not None and (kind := _kind(before.st_mode)):
        raise _refuse(path, kind)
    created = before is None
    try:
        if created:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # O_NONBLOCK: a FIFO swapped in after the check must not block the open; O_NOCTTY: nor a tty.
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise _refuse(path, f"cannot be opened for appending ({exc.strerror})") from None
    kind = _kind(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise _refuse(path, kind)
    if created:
        _sync_dir(path.parent)
    return fd


def _sync_dir(directory: Path) -> None:
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def check(path: Path) -> None:
    """Before the first action: the log is (or can be created as) a regular file we can append to."""
    os.close(_open(path))


def _write(path: Path, record: dict[str, Any]) -> None:
    fd = _open(path)
    try:
        os.write(fd, (json.dumps(record, default=str) + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def intent(
    path: Path,
    *,
    target: str,
    action: str,
    parameters: dict[str, Any],
    runbook: str,
    detail: str = "",
    guard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write (and fsync) the record of an action about to be taken; return it for :func:`outcome`."""
    record = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "phase": "intent",
        "id": uuid.uuid4().hex,
        **who(),
        "runbook": runbook,
        "target": target,
        "action": action,
        "parameters": parameters,
        **({"guard": guard} if guard else {}),
        "detail": detail,
    }
    _write(path, record)
    return record


def outcome(path: Path, intended: dict[str, Any], result: str) -> dict[str, Any]:
    """Write the outcome of the action ``intended`` announced (same id), fsynced; return it."""
    record = {
        **intended,
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "phase": "outcome",
        "result": result,
    }
    _write(path, record)
    return record

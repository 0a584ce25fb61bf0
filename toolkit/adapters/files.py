"""Files the toolkit writes for others to read: replaced in one rename, never seen half-written."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, text: str, mode: int = 0o644) -> None:
    """Replace ``path`` with ``text`` in one rename: a reader sees the old file or the new, never half.

    The temporary file is created in the same directory (a rename is atomic only within one file
    system), fsynced, given ``mode``, renamed over ``path``, and the directory is fsynced. Raise OSError
    (or ValueError when ``path`` exists and is not a regular file: a rename would replace a device
    node or a link instead of writing through it).
    """
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise ValueError("exists and is not a regular file; give a file path")
    directory = path.parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)  # created 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

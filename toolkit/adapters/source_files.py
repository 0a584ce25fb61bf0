"""Walk a code base for Python files and read them, boundedly; a file that cannot be read is one line.

Only regular files inside the tree are read. Symbolic links are not followed (neither to
directories, which os.walk never enters, nor to files: ``x.py -> /dev/zero`` would never end), and a
FIFO, socket or device named ``*.py`` is skipped: it is opened with O_NONBLOCK and O_NOFOLLOW and
checked with fstat on the open descriptor, so it cannot block the open or be swapped in between a
check and the read. A file above ``max_bytes`` is skipped unread.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = frozenset({".venv", "venv", "node_modules", "migrations", "__pycache__", ".git", ".tox"})
DEFAULT_MAX_BYTES = 1024 * 1024  # 1 MiB: no hand-written module comes near; generated ones may
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class SourceFile:
    """One file's text, or why it could not be read."""

    path: str
    text: str | None
    error: str | None = None


def python_files(root: Path) -> list[Path]:
    """Every *.py under root (or root itself), sorted, skipping virtualenvs, migrations and caches."""
    if not root.is_dir() or root.is_symlink():
        return [root]
    found: list[Path] = []
    for directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found += [Path(directory) / f for f in sorted(files) if f.endswith(".py")]
    return found


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a directory"
    return "not a regular file"


def read_source(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> SourceFile:
    """The text of one regular file of at most ``max_bytes``, or the reason it was skipped."""

    def skipped(why: str) -> SourceFile:
        return SourceFile(str(path), None, f"{path}: {why}; skipped")

    try:
        before = os.lstat(path)
        if not stat.S_ISREG(before.st_mode):
            return skipped(_kind(before.st_mode))
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        return skipped(f"cannot read ({exc.strerror or type(exc).__name__})")
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):  # swapped for something else after the lstat
            return skipped(_kind(info.st_mode))
        if info.st_size > max_bytes:
            return skipped(f"{info.st_size} bytes, above the cap of {max_bytes} (raise it with --max-bytes)")
        data = os.read(fd, max_bytes + 1)
    except OSError as exc:
        return skipped(f"cannot read ({exc.strerror or type(exc).__name__})")
    finally:
        os.close(fd)
    if len(data) > max_bytes:  # grew after fstat
        return skipped(f"more than the cap of {max_bytes} bytes (raise it with --max-bytes)")
    try:
        return SourceFile(str(path), data.decode("utf-8"))
    except UnicodeDecodeError:
        return skipped("cannot read (UnicodeDecodeError)")


def iter_sources(root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> Iterator[tuple[int, int, SourceFile]]:
    """(index, total, file) for every Python file under root, read one at a time."""
    paths = python_files(root)
    for i, path in enumerate(paths, 1):
        yield i, len(paths), read_source(path, max_bytes)


def read_sources(root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> list[SourceFile]:
    """The text of every Python file under root, with an error line for each one that cannot be read."""
    return [source for _, _, source in iter_sources(root, max_bytes)]

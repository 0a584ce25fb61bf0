"""Walk a code base for Python files and read them; a file that cannot be read is one line, not a crash."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SKIP_DIRS = frozenset({".venv", "venv", "node_modules", "migrations", "__pycache__", ".git", ".tox"})


@dataclass(frozen=True)
class SourceFile:
    """One file's text, or why it could not be read."""

    path: str
    text: str | None
    error: str | None = None


def python_files(root: Path) -> list[Path]:
    """Every *.py under root (or root itself), sorted, skipping virtualenvs, migrations and caches."""
    if root.is_file():
        return [root]
    found: list[Path] = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
        found += [Path(directory) / f for f in sorted(files) if f.endswith(".py")]
    return found


def read_sources(root: Path) -> list[SourceFile]:
    """The text of every Python file under root, with an error line for each one that cannot be read."""
    out: list[SourceFile] = []
    for path in python_files(root):
        try:
            out.append(SourceFile(str(path), path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
            out.append(SourceFile(str(path), None, f"{path}: cannot read ({why}); skipped"))
    return out

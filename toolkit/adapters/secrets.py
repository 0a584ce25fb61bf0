"""Passwords for doctor and the runbooks: from the environment or a secrets directory, never the inventory.

Each kind of target has an environment variable and a file name; the environment wins. The lab keeps
its generated secrets in ``.lab/`` at the repository root, two levels above ``inventory/lab``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

ENV = {
    "pgbouncer": "TOOLKIT_PGBOUNCER_PASSWORD",
    "pgbouncer_admin": "TOOLKIT_PGBOUNCER_ADMIN_PASSWORD",
    "postgres": "TOOLKIT_POSTGRES_PASSWORD",
    "redis": "TOOLKIT_REDIS_PASSWORD",
    "redis_admin": "TOOLKIT_REDIS_ADMIN_PASSWORD",
}
FILES = {
    "pgbouncer": "pgbouncer_stats_password",
    "pgbouncer_admin": "pgbouncer_admin_password",
    "postgres": "monitor_password",
    "redis": "redis_ops_password",
    "redis_admin": "redis_admin_password",
}


@dataclass(frozen=True)
class Secrets:
    """Where passwords come from; ``password(kind)`` reads one when needed."""

    directory: Path | None
    environ: dict[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def locate(cls, inventory: str, directory: str | None) -> Secrets:
        """The explicit directory, else $TOOLKIT_SECRETS_DIR, else the lab's ``.lab`` beside the inventory."""
        env = dict(os.environ)
        chosen = directory or env.get("TOOLKIT_SECRETS_DIR")
        if not chosen:
            lab = Path(inventory).resolve().parent.parent / ".lab"
            if Path(inventory).is_file():
                lab = Path(inventory).resolve().parent.parent.parent / ".lab"
            chosen = str(lab) if lab.is_dir() else None
        return cls(Path(chosen) if chosen else None, env)

    def password(self, kind: str) -> str | None:
        """The password for ``kind`` (a key of :data:`ENV`), or None if none is set."""
        if ENV[kind] in self.environ:
            return self.environ[ENV[kind]]
        if self.directory is not None:
            path = self.directory / FILES[kind]
            if path.is_file():
                return path.read_text().strip()
        return None

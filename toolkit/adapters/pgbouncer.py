"""The PgBouncer admin console: SHOW commands read by column name, RELOAD, with bounded timeouts.

The one quirk, kept here: the admin console speaks only the simple query protocol. psycopg 3 must
use ``autocommit=True`` (otherwise it sends BEGIN, which the console rejects as "invalid command
'BEGIN'") and ``ClientCursor`` (otherwise, after ``prepare_threshold`` runs of a query, it prepares
it and the console answers "extended query protocol not supported by admin console").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from toolkit.adapters.errors import TargetError


@dataclass(frozen=True)
class AdminTarget:
    """Where one PgBouncer process's admin console listens, and who logs in."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    name: str = ""

    @property
    def label(self) -> str:
        """How messages name the target; never carries the password."""
        return f"pgbouncer@{self.host}:{self.port}"


@dataclass(frozen=True)
class ConfigEntry:
    """One row of SHOW CONFIG."""

    key: str
    value: str
    default: str | None
    changeable: bool


@dataclass(frozen=True)
class Version:
    """PgBouncer's version, from SHOW VERSION ("PgBouncer 1.18.0")."""

    major: int
    minor: int
    patch: int
    text: str

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse SHOW VERSION's text.

        >>> Version.parse("PgBouncer 1.18.0").minor
        18
        """
        m = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", text)
        if not m:
            raise ValueError(f"unrecognised PgBouncer version {text!r}")
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0), text)


class AdminConsole:
    """A connection to one PgBouncer admin console."""

    def __init__(self, target: AdminTarget, timeout: float = 5.0) -> None:
        self.target = target
        self.timeout = timeout
        try:
            self._conn = psycopg.connect(
                host=target.host,
                port=target.port,
                user=target.user,
                password=target.password,
                dbname="pgbouncer",
                connect_timeout=max(1, round(timeout)),
                autocommit=True,  # the console rejects BEGIN
                cursor_factory=psycopg.ClientCursor,  # the console speaks only the simple protocol
                application_name="toolkit",
            )
        except psycopg.Error as exc:
            raise TargetError.from_exception(target.label, "connecting", exc, timeout) from None

    def __enter__(self) -> AdminConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the session (it took a client slot)."""
        self._conn.close()

    def rows(self, command: str) -> list[dict[str, Any]]:
        """Run a SHOW command and return its rows as dicts keyed by column name."""
        try:
            with self._conn.cursor() as cur:
                cur.execute(command)
                names = [d.name for d in cur.description or ()]
                return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
        except psycopg.Error as exc:
            raise TargetError.from_exception(self.target.label, command, exc, self.timeout) from None

    def command(self, command: str) -> None:
        """Run a console command that returns no rows (RELOAD, PAUSE, RESUME, SET ...)."""
        try:
            with self._conn.cursor() as cur:
                cur.execute(command)
        except psycopg.Error as exc:
            raise TargetError.from_exception(self.target.label, command, exc, self.timeout) from None

    def version(self) -> Version:
        """SHOW VERSION, parsed."""
        rows = self.rows("SHOW VERSION")
        return Version.parse(str(next(iter(rows[0].values()))) if rows else "")

    def config(self) -> Mapping[str, ConfigEntry]:
        """SHOW CONFIG as entries by key; columns read by name (older versions lack some)."""
        out = {}
        for row in self.rows("SHOW CONFIG"):
            changeable = str(row.get("changeable", "yes")).lower() in {"yes", "true", "t"}
            default = row.get("default")
            key = str(row["key"])
            out[key] = ConfigEntry(
                key, str(row["value"]), None if default is None else str(default), changeable
            )
        return out

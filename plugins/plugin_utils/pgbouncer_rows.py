# Generated from toolkit/domain/pgbouncer_rows.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/pgbouncer_rows.py and run `python scripts/generate_plugin_utils.py`.
"""PgBouncer's SHOW output as frozen rows: the one place its column names are read.

Pure. The admin-console adapter (toolkit/adapters/pgbouncer.py) passes each SHOW command's column
names and raw rows here; the roles' verify tasks pass psql's CSV output through a filter. Columns are
looked up once per result, by name, with the name the PgBouncer version uses: versions add and rename
columns (measured on the lab: 1.24 renamed SHOW DATABASES' reserve_pool to reserve_pool_size and added
load_balance_hosts to SHOW POOLS, max_client_connections to SHOW DATABASES and id to SHOW CLIENTS).
A column a version does not have reads as the field's default; a column the version must have and
the result lacks is an error naming both, never a silent zero.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, TypeVar

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.numbers import as_int

Raw = Sequence[Any]
R = TypeVar("R")


@dataclass(frozen=True, order=True)
class Version:
    """PgBouncer's version, from SHOW VERSION ("PgBouncer 1.18.0")."""

    major: int
    minor: int
    patch: int
    text: str = ""

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

    @property
    def number(self) -> str:
        """The version number alone: "1.18.0"."""
        return f"{self.major}.{self.minor}.{self.patch}"

    def at_least(self, major: int, minor: int) -> bool:
        """Whether this version is ``major.minor`` or newer."""
        return (self.major, self.minor) >= (major, minor)


# A renamed column: (field, old name, new name, the version that renamed it). Source: the captured
# output of 1.18 and 1.24 in tests/unit/fixtures/pgbouncer/ and docs/FACTS (1.24 renamed reserve_pool).
RENAMED = {"DATABASES": {"reserve_pool_size": ("reserve_pool", "reserve_pool_size", (1, 24))}}
# Columns every version the toolkit supports has; their absence is an error.
REQUIRED = {
    "POOLS": ("database", "user", "cl_active", "cl_waiting", "sv_active", "sv_idle", "sv_used"),
    "DATABASES": ("name", "pool_size", "paused", "disabled"),
    "STATS": ("database", "total_xact_count", "total_query_count", "total_xact_time", "total_query_time"),
    "CLIENTS": ("type", "user", "database", "state", "addr", "port", "ptr", "link"),
    "SERVERS": ("type", "user", "database", "state", "addr", "port", "ptr", "link"),
    "CONFIG": ("key", "value"),
}


def _bool(value: Any) -> bool:
    return str(value).strip().lower() in {"1", "t", "true", "yes", "on"}


def _str(value: Any) -> str:
    return "" if value is None else str(value)


@dataclass(frozen=True)
class PoolState:
    """One row of SHOW POOLS."""

    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    maxwait_seconds: float
    pool_mode: str
    sv_tested: int = 0
    sv_login: int = 0
    cl_active_cancel_req: int = 0
    cl_waiting_cancel_req: int = 0
    sv_active_cancel: int = 0
    sv_being_canceled: int = 0
    load_balance_hosts: str = ""  # 1.24 on

    @property
    def sv_busy(self) -> int:
        """Server connections in use or being tested (not yet free for another client)."""
        return self.sv_active + self.sv_tested


@dataclass(frozen=True)
class ClientConn:
    """One row of SHOW CLIENTS or SHOW SERVERS."""

    type: str
    user: str
    database: str
    state: str
    addr: str
    port: int
    ptr: str
    link: str
    remote_pid: int
    application_name: str
    close_needed: bool = False
    tls: str = ""
    prepared_statements: int = 0  # 1.21 on


@dataclass(frozen=True)
class DatabaseRow:
    """One row of SHOW DATABASES (every field but the name has a default, for plans and tests)."""

    name: str
    paused: bool = False
    disabled: bool = False
    pool_size: int = 0
    reserve_pool_size: int = 0
    min_pool_size: int = 0
    pool_mode: str = ""
    max_connections: int = 0
    current_connections: int = 0
    host: str = ""
    port: int = 0
    database: str = ""
    force_user: str = ""


@dataclass(frozen=True)
class StatsRow:
    """One row of SHOW STATS: running totals since PgBouncer started (times in microseconds)."""

    database: str
    total_xact_count: int
    total_query_count: int
    total_xact_time: int
    total_query_time: int
    total_wait_time: int = 0
    total_received: int = 0
    total_sent: int = 0


@dataclass(frozen=True)
class ConfigEntry:
    """One row of SHOW CONFIG."""

    key: str
    value: str
    default: str | None
    changeable: bool


class Columns:
    """Where each field of one SHOW result is, by column name, resolved once for its version.

    ``version`` None (psql output in a verify task) takes whichever name of a renamed column the
    header has.
    """

    def __init__(self, command: str, names: Sequence[str], version: Version | None) -> None:
        self.command = command
        self.index = {name: i for i, name in enumerate(names)}
        missing = [c for c in REQUIRED.get(command, ()) if c not in self.index]
        for field_name, (old, new, since) in RENAMED.get(command, {}).items():
            if version is None:
                self.index.setdefault(field_name, self.index.get(new, self.index.get(old, -1)))
                continue
            name = new if version.at_least(*since) else old
            if name in self.index:
                self.index[field_name] = self.index[name]
            else:
                missing.append(name)
        if missing:
            where = f"PgBouncer {version.number}" if version else "this PgBouncer"
            raise ValueError(
                f"SHOW {command} of {where} lacks column(s) {', '.join(missing)}; "
                "is it a PgBouncer version the toolkit supports (1.18 or newer)?"
            )

    def get(self, row: Raw, name: str) -> Any:
        """The value of column ``name`` in ``row``, or None when this version has no such column."""
        i = self.index.get(name, -1)
        return row[i] if 0 <= i < len(row) else None


_POOL_COUNTS = (
    "sv_tested",
    "sv_login",
    "cl_active_cancel_req",
    "cl_waiting_cancel_req",
    "sv_active_cancel",
    "sv_being_canceled",
)


def _pool(c: Columns, r: Raw) -> PoolState:
    maxwait = as_int(c.get(r, "maxwait")) + as_int(c.get(r, "maxwait_us")) / 1e6
    counts = {name: as_int(c.get(r, name)) for name in _POOL_COUNTS}
    return PoolState(
        _str(c.get(r, "database")),
        _str(c.get(r, "user")),
        as_int(c.get(r, "cl_active")),
        as_int(c.get(r, "cl_waiting")),
        as_int(c.get(r, "sv_active")),
        as_int(c.get(r, "sv_idle")),
        as_int(c.get(r, "sv_used")),
        maxwait,
        _str(c.get(r, "pool_mode")),
        load_balance_hosts=_str(c.get(r, "load_balance_hosts")),
        **counts,
    )


def _conn(c: Columns, r: Raw) -> ClientConn:
    return ClientConn(
        type=_str(c.get(r, "type")),
        user=_str(c.get(r, "user")),
        database=_str(c.get(r, "database")),
        state=_str(c.get(r, "state")),
        addr=_str(c.get(r, "addr")),
        port=as_int(c.get(r, "port")),
        ptr=_str(c.get(r, "ptr")),
        link=_str(c.get(r, "link")),
        remote_pid=as_int(c.get(r, "remote_pid")),
        application_name=_str(c.get(r, "application_name")),
        close_needed=_bool(c.get(r, "close_needed")),
        tls=_str(c.get(r, "tls")),
        prepared_statements=as_int(c.get(r, "prepared_statements")),
    )


def _database(c: Columns, r: Raw) -> DatabaseRow:
    return DatabaseRow(
        name=_str(c.get(r, "name")),
        host=_str(c.get(r, "host")),
        port=as_int(c.get(r, "port")),
        database=_str(c.get(r, "database")),
        pool_size=as_int(c.get(r, "pool_size")),
        reserve_pool_size=as_int(c.get(r, "reserve_pool_size")),
        pool_mode=_str(c.get(r, "pool_mode")),
        max_connections=as_int(c.get(r, "max_connections")),
        current_connections=as_int(c.get(r, "current_connections")),
        paused=_bool(c.get(r, "paused")),
        disabled=_bool(c.get(r, "disabled")),
        min_pool_size=as_int(c.get(r, "min_pool_size")),
        force_user=_str(c.get(r, "force_user")),
    )


def _stats(c: Columns, r: Raw) -> StatsRow:
    return StatsRow(_str(c.get(r, "database")), *(as_int(c.get(r, f.name)) for f in fields(StatsRow)[1:]))


def _config(c: Columns, r: Raw) -> ConfigEntry:
    default = c.get(r, "default")  # absent before 1.18's console had it: None
    changeable = c.get(r, "changeable")
    return ConfigEntry(
        _str(c.get(r, "key")),
        _str(c.get(r, "value")),
        None if default is None else str(default),
        True if changeable is None else _bool(changeable),
    )


def _parse(command: str, build: Callable[[Columns, Raw], R]) -> Callable[..., tuple[R, ...]]:
    def parse(names: Sequence[str], rows: Iterable[Raw], version: Version | None = None) -> tuple[R, ...]:
        columns = Columns(command, names, version)
        return tuple(build(columns, row) for row in rows)

    parse.__doc__ = f"SHOW {command}'s rows (column ``names``, raw ``rows``) of PgBouncer ``version``."
    return parse


pools = _parse("POOLS", _pool)
databases = _parse("DATABASES", _database)
stats = _parse("STATS", _stats)
clients = _parse("CLIENTS", _conn)
servers = _parse("SERVERS", _conn)
config_rows = _parse("CONFIG", _config)


def config(
    names: Sequence[str], rows: Iterable[Raw], version: Version | None = None
) -> dict[str, ConfigEntry]:
    """SHOW CONFIG as entries by key.

    >>> config(["key", "value"], [["pool_mode", "transaction"]])["pool_mode"].value
    'transaction'
    """
    return {e.key: e for e in config_rows(names, rows, version)}


def lists(names: Sequence[str], rows: Iterable[Raw]) -> dict[str, int]:
    """SHOW LISTS as counts by list name."""
    c = Columns("LISTS", names, None)
    return {_str(c.get(r, "list")): as_int(c.get(r, "items")) for r in rows}


def version(rows: Sequence[Raw]) -> Version:
    """SHOW VERSION's one row, parsed."""
    return Version.parse(_str(rows[0][0]) if rows and rows[0] else "")


def from_csv(text: str) -> tuple[list[str], list[list[str]]]:
    """psql ``--csv`` output -> (column names, rows); an empty field (a NULL) reads as "".

    >>> from_csv('key,value\\npool_mode,transaction\\n')
    (['key', 'value'], [['pool_mode', 'transaction']])
    """
    lines = list(csv.reader(io.StringIO(text)))
    if not lines:
        raise ValueError("psql printed nothing: expected CSV with a header line (psql --csv)")
    return lines[0], [line for line in lines[1:] if line]


def to_dict(row: object) -> dict[str, Any]:
    """A row as plain data (for JSON and for Ansible)."""
    return {f.name: getattr(row, f.name) for f in fields(row)}  # type: ignore[arg-type]


def by_name(rows: Iterable[DatabaseRow]) -> Mapping[str, DatabaseRow]:
    """SHOW DATABASES rows by database name."""
    return {r.name: r for r in rows}

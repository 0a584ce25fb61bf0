"""The PgBouncer admin console: SHOW commands read by column name, RELOAD, with bounded timeouts.

The one quirk, kept here: the admin console speaks only the simple query protocol. psycopg 3 must
use ``autocommit=True`` (otherwise it sends BEGIN, which the console rejects as "invalid command
'BEGIN'") and ``ClientCursor`` (otherwise, after ``prepare_threshold`` runs of a query, it prepares
it and the console answers "extended query protocol not supported by admin console").
"""

from __future__ import annotations

import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.processes import process_number
from toolkit.domain.snapshot import ClientConn, PgBouncerState, PoolState

# Admin commands that take a database (or, for SET, a setting) name. Every such name is sent quoted:
# PgBouncer's console grammar (src/admin.c: WORD is "..." with "" for a quote, or [0-9a-z_]+) unquotes
# it, so a name can never end the command early or add another (measured on 1.18: PAUSE "app" works,
# PAUSE "a""pp" looks for the database a"pp).
ADMIN_VERBS = frozenset(
    {"PAUSE", "RESUME", "KILL", "DISABLE", "ENABLE", "RECONNECT", "WAIT_CLOSE", "SUSPEND"}
)


def quote_ident(name: str) -> str:
    """``name`` as a quoted identifier for the admin console: in double quotes, each ``"`` doubled.

    >>> quote_ident('app')
    '"app"'
    >>> quote_ident('a"; SHUTDOWN')
    '"a""; SHUTDOWN"'
    """
    if not name or "\x00" in name:
        raise ValueError(f"not an identifier the admin console can name: {name!r}")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """``value`` as a string literal for the admin console's SET: in single quotes, each ``'`` doubled.

    >>> quote_literal("it's")
    "'it''s'"
    """
    if "\x00" in value:
        raise ValueError(f"not a value the admin console can take: {value!r}")
    return "'" + value.replace("'", "''") + "'"


def admin_command(verb: str, name: str | None = None) -> str:
    """One admin command on one database (or on the whole pooler without ``name``), the name quoted.

    >>> admin_command("PAUSE", "app"), admin_command("RESUME")
    ('PAUSE "app"', 'RESUME')
    """
    if verb not in ADMIN_VERBS:
        raise ValueError(f"not an admin command that names a database: {verb!r}")
    return verb if name is None else f"{verb} {quote_ident(name)}"


def set_command(key: str, value: object) -> str:
    """``SET "key" = 'value'``: a live setting, both sides quoted.

    >>> print(set_command("default_pool_size", 20))
    SET "default_pool_size" = '20'
    """
    return f"SET {quote_ident(key)} = {quote_literal(str(value))}"


@dataclass(frozen=True)
class AdminTarget:
    """Where one PgBouncer process's admin console listens, and who logs in."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    name: str = ""
    # On a host that runs several processes on one port (so_reuseport): the one process this target
    # is (toolkit.domain.runbooks.processes); 0 is whichever process the kernel hands the connection.
    process: int = 0

    @property
    def label(self) -> str:
        """How messages name the target; never carries the password."""
        where = f"pgbouncer@{self.host}:{self.port}"
        return f"{where} process {self.process}" if self.process else where


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


# Connections tried to reach one process of several sharing a port: the kernel picks the process per
# connection, so with two processes 40 tries all miss one with a chance of 2**-40.
PROCESS_TRIES = 40


class AdminConsole:
    """A connection to one PgBouncer admin console (to ``target.process`` when it names one)."""

    def __init__(self, target: AdminTarget, timeout: float = 5.0) -> None:
        self.target = target
        self.timeout = timeout
        self._conn = self._connect()
        if not target.process:
            return
        reached: set[int] = set()
        for attempt in range(PROCESS_TRIES):
            number = process_number({k: e.value for k, e in self.config().items()})
            if number == target.process:
                return
            reached.add(number)
            self._conn.close()
            if attempt < PROCESS_TRIES - 1:
                self._conn = self._connect()
        seen = ", ".join(str(n) for n in sorted(reached)) or "none"
        raise TargetError(
            target.label,
            "connecting",
            f"{PROCESS_TRIES} connections reached only process(es) {seen}",
            f"is process {target.process} running on {target.name or target.host}? "
            "(systemctl status pgbouncer* there; its pidfile or peer_id names it)",
        )

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        target, timeout = self.target, self.timeout
        try:
            return psycopg.connect(
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

    def drop(self) -> None:
        """Shut the socket down under a pending command (a PAUSE): PgBouncer sees the client go.

        Closing the connection from this thread while another thread waits in it would race with
        libpq; a socket shutdown only wakes that thread with an error, and it then closes.
        """
        with socket.socket(fileno=self._conn.pgconn.socket) as sock:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            finally:
                sock.detach()  # the descriptor stays libpq's to close

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


def _int(row: Mapping[str, Any], key: str) -> int:
    value = row.get(key)
    return int(value) if value not in (None, "") else 0


def _pool(row: Mapping[str, Any]) -> PoolState:
    return PoolState(
        database=str(row.get("database", "")),
        user=str(row.get("user", "")),
        cl_active=_int(row, "cl_active"),
        cl_waiting=_int(row, "cl_waiting"),
        sv_active=_int(row, "sv_active"),
        sv_idle=_int(row, "sv_idle"),
        sv_used=_int(row, "sv_used"),
        maxwait_seconds=_int(row, "maxwait") + _int(row, "maxwait_us") / 1e6,
        pool_mode=str(row.get("pool_mode") or ""),
    )


def _conn(row: Mapping[str, Any]) -> ClientConn:
    return ClientConn(
        type=str(row.get("type", "")),
        user=str(row.get("user", "")),
        database=str(row.get("database", "")),
        state=str(row.get("state", "")),
        addr=str(row.get("addr") or ""),
        port=_int(row, "port"),
        ptr=str(row.get("ptr") or ""),
        link=str(row.get("link") or ""),
        remote_pid=_int(row, "remote_pid"),
        application_name=str(row.get("application_name") or ""),
    )


def read_links(target: AdminTarget, timeout: float) -> tuple[tuple[ClientConn, ...], tuple[ClientConn, ...]]:
    """SHOW CLIENTS and SHOW SERVERS of one process, on one session (their ptr and link agree)."""
    with AdminConsole(target, timeout) as console:
        clients = tuple(_conn(r) for r in console.rows("SHOW CLIENTS"))
        servers = tuple(_conn(r) for r in console.rows("SHOW SERVERS"))
    return clients, servers


def read_state(target: AdminTarget, timeout: float) -> PgBouncerState:
    """Read every SHOW output doctor needs from one process, parsed by column name."""
    with AdminConsole(target, timeout) as console:
        version = console.version()
        config = {k: e.value for k, e in console.config().items()}
        pools = tuple(_pool(r) for r in console.rows("SHOW POOLS"))
        databases = tuple(console.rows("SHOW DATABASES"))
        clients = tuple(_conn(r) for r in console.rows("SHOW CLIENTS"))
        servers = tuple(_conn(r) for r in console.rows("SHOW SERVERS"))
        stats = tuple(console.rows("SHOW STATS"))
        lists = {str(r.get("list")): _int(r, "items") for r in console.rows("SHOW LISTS")}
    return PgBouncerState(
        host=target.name or target.host,
        address=f"{target.host}:{target.port}",
        version=version.text,
        config=config,
        pools=pools,
        databases=databases,
        clients=clients,
        servers=servers,
        stats=stats,
        lists=lists,
        fd_limit=_local_fd_limit(target.host, config.get("pidfile", "")),
    )


def _local_fd_limit(host: str, pidfile: str) -> int | None:
    """The open-files limit of a PgBouncer on this machine (from its pidfile), else None."""
    if host not in ("127.0.0.1", "localhost", "::1") or not pidfile:
        return None
    try:
        pid = int(Path(pidfile).read_text().strip())
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                return int(line.split()[3])
    except (OSError, ValueError, IndexError):
        return None
    return None

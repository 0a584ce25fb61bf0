"""The PgBouncer admin console: SHOW commands read by column name, RELOAD, with bounded timeouts.

The one quirk, kept here: the admin console speaks only the simple query protocol. psycopg 3 must
use ``autocommit=True`` (otherwise it sends BEGIN, which the console rejects as "invalid command
'BEGIN'") and ``ClientCursor`` (otherwise, after ``prepare_threshold`` runs of a query, it prepares
it and the console answers "extended query protocol not supported by admin console").
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from toolkit.adapters.errors import TargetError
from toolkit.domain import pgbouncer_rows as show
from toolkit.domain.pgbouncer_rows import (
    ClientConn,
    ConfigEntry,
    DatabaseRow,
    PoolState,
    StatsRow,
    Version,
)
from toolkit.domain.runbooks.processes import process_number
from toolkit.domain.snapshot import PgBouncerState

T = TypeVar("T")
# The row types are re-exported: callers take the gateway and its rows from here.
__all__ = [
    "ADMIN_VERBS",
    "PROCESS_TRIES",
    "AdminConsole",
    "AdminTarget",
    "ClientConn",
    "ConfigEntry",
    "DatabaseRow",
    "PoolState",
    "StatsRow",
    "Version",
    "admin_command",
    "quote_ident",
    "quote_literal",
    "read_links",
    "read_state",
    "set_command",
]

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


# Connections tried to reach one process of several sharing a port: the kernel picks the process per
# connection, so with two processes 40 tries all miss one with a chance of 2**-40.
PROCESS_TRIES = 40


class AdminConsole:
    """A connection to one PgBouncer admin console (to ``target.process`` when it names one)."""

    def __init__(self, target: AdminTarget, timeout: float = 5.0) -> None:
        self.target = target
        self.timeout = timeout
        self._version: Version | None = None
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

    def _result(self, command: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        try:
            with self._conn.cursor() as cur:
                cur.execute(command)
                return [d.name for d in cur.description or ()], cur.fetchall()
        except psycopg.Error as exc:
            raise TargetError.from_exception(self.target.label, command, exc, self.timeout) from None

    def rows(self, command: str) -> list[dict[str, Any]]:
        """Run a SHOW command and return its raw rows as dicts by column name (for snapshot files)."""
        names, rows = self._result(command)
        return [dict(zip(names, row, strict=True)) for row in rows]

    def command(self, command: str) -> None:
        """Run a console command that returns no rows (RELOAD, PAUSE, RESUME, SET ...)."""
        try:
            with self._conn.cursor() as cur:
                cur.execute(command)
        except psycopg.Error as exc:
            raise TargetError.from_exception(self.target.label, command, exc, self.timeout) from None

    def _typed(self, command: str, parse: Callable[[Sequence[str], Sequence[Any], Version], T]) -> T:
        version = self.version()
        names, rows = self._result(f"SHOW {command}")
        try:
            return parse(names, rows, version)
        except ValueError as exc:
            raise TargetError(
                self.target.label, f"SHOW {command}", str(exc), "the toolkit reads PgBouncer 1.18 and newer"
            ) from None

    def version(self) -> Version:
        """SHOW VERSION, parsed; read once per session (the other SHOW columns depend on it)."""
        if self._version is None:
            self._version = show.version(self._result("SHOW VERSION")[1])
        return self._version

    def config(self) -> Mapping[str, ConfigEntry]:
        """SHOW CONFIG as entries by key."""
        return self._typed("CONFIG", show.config)

    def pools(self) -> tuple[PoolState, ...]:
        """SHOW POOLS."""
        return self._typed("POOLS", show.pools)

    def databases(self) -> tuple[DatabaseRow, ...]:
        """SHOW DATABASES."""
        return self._typed("DATABASES", show.databases)

    def stats(self) -> tuple[StatsRow, ...]:
        """SHOW STATS."""
        return self._typed("STATS", show.stats)

    def clients(self) -> tuple[ClientConn, ...]:
        """SHOW CLIENTS."""
        return self._typed("CLIENTS", show.clients)

    def servers(self) -> tuple[ClientConn, ...]:
        """SHOW SERVERS."""
        return self._typed("SERVERS", show.servers)

    def lists(self) -> dict[str, int]:
        """SHOW LISTS as counts by list name."""
        return show.lists(*self._result("SHOW LISTS"))

    # Commands. Every name is quoted here (admin_command, set_command), never by the caller.
    def pause(self, database: str | None = None) -> None:
        """PAUSE one database, or the whole pooler."""
        self.command(admin_command("PAUSE", database))

    def resume(self, database: str | None = None) -> None:
        """RESUME one database, or the whole pooler."""
        self.command(admin_command("RESUME", database))

    def kill(self, database: str) -> None:
        """KILL one database's client connections (it stays paused until RESUME)."""
        self.command(admin_command("KILL", database))

    def reconnect(self, database: str | None = None) -> None:
        """RECONNECT one database's server connections, or every database's."""
        self.command(admin_command("RECONNECT", database))

    def disable(self, database: str) -> None:
        """DISABLE one database: new clients are refused."""
        self.command(admin_command("DISABLE", database))

    def enable(self, database: str) -> None:
        """ENABLE one database."""
        self.command(admin_command("ENABLE", database))

    def set(self, key: str, value: object) -> None:
        """SET one setting live (RELOAD reverts it to the file's value)."""
        self.command(set_command(key, value))

    def reload(self) -> None:
        """RELOAD the config file."""
        self.command("RELOAD")


def read_links(target: AdminTarget, timeout: float) -> tuple[tuple[ClientConn, ...], tuple[ClientConn, ...]]:
    """SHOW CLIENTS and SHOW SERVERS of one process, on one session (their ptr and link agree)."""
    with AdminConsole(target, timeout) as console:
        return console.clients(), console.servers()


def read_state(target: AdminTarget, timeout: float) -> PgBouncerState:
    """Read every SHOW output doctor needs from one process, parsed by column name."""
    with AdminConsole(target, timeout) as console:
        version = console.version()
        config = {k: e.value for k, e in console.config().items()}
        pools = console.pools()
        databases = console.databases()
        clients = console.clients()
        servers = console.servers()
        stats = console.stats()
        lists = console.lists()
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

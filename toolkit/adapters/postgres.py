"""PostgreSQL: capacity settings, timeouts and the sessions of pg_stat_activity, with lock waits.

Connects as a monitoring role (pg_monitor), read-only, with a statement timeout so that a slow
catalogue query never holds doctor past its deadline.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import psycopg

from toolkit.adapters.errors import TargetError
from toolkit.domain.snapshot import Backend, PostgresState

SETTINGS = (
    "max_connections",
    "superuser_reserved_connections",
    "reserved_connections",
    # RDS and Aurora only (slots for rds_superuser members); absent elsewhere, so never an error.
    "rds.rds_superuser_reserved_connections",
    "idle_in_transaction_session_timeout",
    "statement_timeout",
    "idle_session_timeout",
    "password_encryption",
    "server_version",
)

ACTIVITY_SQL = """
SELECT pid, coalesce(usename, '') AS usename, coalesce(datname, '') AS datname,
       coalesce(application_name, '') AS application_name,
       coalesce(host(client_addr), '') AS client_addr, coalesce(backend_type, '') AS backend_type,
       coalesce(state, '') AS state,
       extract(epoch FROM now() - xact_start)::float8 AS xact_age,
       extract(epoch FROM now() - query_start)::float8 AS query_age,
       extract(epoch FROM now() - state_change)::float8 AS state_age,
       coalesce(wait_event_type, '') AS wait_event_type,
       pg_blocking_pids(pid) AS blocked_by,
       left(coalesce(query, ''), 200) AS query
FROM pg_stat_activity
WHERE pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class PostgresTarget:
    """Where PostgreSQL listens and which monitoring role doctor uses."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str = "postgres"

    @property
    def label(self) -> str:
        """How messages name the target."""
        return f"postgres@{self.host}:{self.port}"


def read_state(target: PostgresTarget, timeout: float) -> PostgresState:
    """Read settings and sessions; raise TargetError naming the cause on failure."""
    during = "connecting"
    try:
        with _connect(target, timeout) as conn:
            during = "reading settings"
            rows = conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", [list(SETTINGS)]
            ).fetchall()
            settings = {str(k): str(v) for k, v in rows}
            during = "reading pg_stat_activity"
            cur = conn.execute(ACTIVITY_SQL)
            names = [d.name for d in cur.description or ()]
            backends = tuple(_backend(dict(zip(names, row, strict=True))) for row in cur.fetchall())
    except psycopg.Error as exc:
        raise TargetError.from_exception(target.label, during, exc, timeout) from None
    return PostgresState(
        address=f"{target.host}:{target.port}",
        version=settings.get("server_version", ""),
        settings=settings,
        backends=backends,
    )


def _age(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]


def _backend(row: dict[str, object]) -> Backend:
    blocked = row.get("blocked_by") or []
    return Backend(
        pid=int(row["pid"]),  # type: ignore[call-overload]
        usename=str(row["usename"]),
        datname=str(row["datname"]),
        application_name=str(row["application_name"]),
        client_addr=str(row["client_addr"]),
        backend_type=str(row["backend_type"]),
        state=str(row["state"]),
        xact_age=_age(row["xact_age"]),
        query_age=_age(row["query_age"]),
        state_age=_age(row["state_age"]),
        wait_event_type=str(row["wait_event_type"]),
        blocked_by=tuple(int(p) for p in blocked),  # type: ignore[attr-defined]
        query=str(row["query"]),
    )


def superusers(target: PostgresTarget, timeout: float) -> frozenset[str]:
    """Names of the superuser roles (runbooks never touch their sessions)."""
    try:
        with _connect(target, timeout) as conn:
            return frozenset(str(r[0]) for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolsuper"))
    except psycopg.Error as exc:
        raise TargetError.from_exception(target.label, "reading roles", exc, timeout) from None


def signal_backend(target: PostgresTarget, pid: int, how: str, timeout: float) -> bool:
    """pg_cancel_backend or pg_terminate_backend one pid; True if PostgreSQL signalled it."""
    function = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}[how]
    try:
        with _connect(target, timeout) as conn:
            row = conn.execute(f"SELECT {function}(%s)", [pid]).fetchone()
            return bool(row and row[0])
    except psycopg.Error as exc:
        raise TargetError.from_exception(target.label, f"{function}({pid})", exc, timeout) from None


def _connect(target: PostgresTarget, timeout: float) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        dbname=target.dbname,
        connect_timeout=max(2, round(timeout)),
        application_name="toolkit",
        options=f"-c statement_timeout={int(timeout * 1000)}",
        autocommit=True,
    )

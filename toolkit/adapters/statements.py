"""Read pg_stat_statements as the monitoring role, and parse each statement's shape.

The statistics are cluster-wide, but the view exists only in the databases where the extension was
created: the first candidate database that has it is read. Columns are read by name (PostgreSQL 13
renamed total_time to total_exec_time). Without pg_read_all_stats (pg_monitor includes it), the view
hides the text and queryid of other roles' statements: those are counted and reported, not dropped
silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from toolkit.adapters import sql_shape
from toolkit.adapters.errors import TargetError
from toolkit.domain.audit_queries import Statement

HIDDEN_TEXT = "<insufficient privilege>"

_EXTENSION_SQL = """
SELECT n.nspname,
       pg_has_role('pg_read_all_stats', 'USAGE')
       OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_stat_statements'
"""


@dataclass(frozen=True)
class StatementsTarget:
    """The PostgreSQL server, the monitoring role and the databases that may hold the view."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbnames: tuple[str, ...] = ("postgres",)

    @property
    def label(self) -> str:
        """How messages name the target."""
        return f"postgres@{self.host}:{self.port}"


@dataclass(frozen=True)
class StatementsRead:
    """What was read: the visible statements (parsed), and how many others the role could not see."""

    database: str  # where the view was read
    statements: tuple[Statement, ...]
    hidden: int  # statements above the thresholds whose text the role may not read
    read_all_stats: bool
    total: int  # rows in the view, of every role and database


def read_statements(
    target: StatementsTarget, timeout: float, min_calls: int, min_rows_per_call: float, limit: int = 1000
) -> StatementsRead:
    """The statements called at least ``min_calls`` times returning at least ``min_rows_per_call`` rows."""
    tried: list[str] = []
    for dbname in target.dbnames:
        try:
            with _connect(target, dbname, timeout) as conn:
                row = conn.execute(_EXTENSION_SQL).fetchone()
                if row is None:
                    tried.append(dbname)
                    continue
                return _read(conn, dbname, str(row[0]), bool(row[1]), min_calls, min_rows_per_call, limit)
        except psycopg.errors.ObjectNotInPrerequisiteState:
            raise TargetError(
                target.label,
                f"reading pg_stat_statements in database {dbname}",
                "pg_stat_statements is not loaded",
                "add it to shared_preload_libraries in postgresql.conf and restart PostgreSQL",
            ) from None
        except psycopg.OperationalError as exc:
            if "does not exist" in str(exc):
                tried.append(dbname)
                continue
            raise TargetError.from_exception(target.label, f"connecting to {dbname}", exc, timeout) from None
        except psycopg.Error as exc:
            raise TargetError.from_exception(target.label, f"reading {dbname}", exc, timeout) from None
    raise TargetError(
        target.label,
        "looking for pg_stat_statements",
        f"the pg_stat_statements extension is not installed in database {', '.join(tried) or '(none)'}",
        "as a superuser run CREATE EXTENSION pg_stat_statements in the application's database "
        "(it also needs pg_stat_statements in shared_preload_libraries), or pass --dbname",
    )


def _read(
    conn: psycopg.Connection[tuple[object, ...]],
    dbname: str,
    schema: str,
    read_all_stats: bool,
    min_calls: int,
    min_rows_per_call: float,
    limit: int,
) -> StatementsRead:
    view = sql.Identifier(schema, "pg_stat_statements")
    cur = conn.execute(sql.SQL("SELECT * FROM {} LIMIT 0").format(view))
    names = {d.name for d in cur.description or ()}
    total_col = "total_exec_time" if "total_exec_time" in names else "total_time"
    mean_col = "mean_exec_time" if "mean_exec_time" in names else "mean_time"
    toplevel = sql.SQL("AND s.toplevel") if "toplevel" in names else sql.SQL("")
    query = sql.SQL(
        """
        SELECT s.queryid, s.calls, s.rows, s.{total}::float8, s.{mean}::float8, s.query,
               coalesce(r.rolname, ''), coalesce(d.datname, '')
        FROM {view} s
        LEFT JOIN pg_roles r ON r.oid = s.userid
        LEFT JOIN pg_database d ON d.oid = s.dbid
        WHERE s.calls >= %(calls)s AND s.rows >= s.calls * %(rpc)s {toplevel}
        ORDER BY s.{total} DESC
        LIMIT %(limit)s
        """
    ).format(total=sql.Identifier(total_col), mean=sql.Identifier(mean_col), view=view, toplevel=toplevel)
    rows = conn.execute(query, {"calls": min_calls, "rpc": min_rows_per_call, "limit": limit}).fetchall()
    count = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(view)).fetchone()
    visible = [r for r in rows if r[0] is not None and r[5] != HIDDEN_TEXT]
    return StatementsRead(
        database=dbname,
        statements=tuple(_statement(r) for r in visible),
        hidden=len(rows) - len(visible),
        read_all_stats=read_all_stats,
        total=int(count[0]) if count else 0,  # type: ignore[call-overload]
    )


def _statement(row: Sequence[object]) -> Statement:
    text = str(row[5] or "")
    return Statement(
        queryid=int(row[0]),  # type: ignore[call-overload]
        calls=int(row[1]),  # type: ignore[call-overload]
        rows=int(row[2]),  # type: ignore[call-overload]
        total_ms=float(row[3]),  # type: ignore[arg-type]
        mean_ms=float(row[4]),  # type: ignore[arg-type]
        text=sql_shape.redact(text),
        user=str(row[6]),
        database=str(row[7]),
        shape=sql_shape.shape(text),
    )


def _connect(target: StatementsTarget, dbname: str, timeout: float) -> psycopg.Connection[tuple[object, ...]]:
    """A connection whose reads run in one transaction under a local statement_timeout.

    The timeout is set with SET LOCAL rather than the startup parameter ``options``, which PgBouncer
    refuses: the audit works pointed at PostgreSQL or at a PgBouncer in transaction mode, and the
    setting ends with the transaction, so it never stays on a pooled server connection.
    """
    conn = psycopg.connect(
        host=target.host,
        port=target.port,
        user=target.user,
        password=target.password,
        dbname=dbname,
        connect_timeout=max(2, round(timeout)),
        application_name="toolkit audit queries",
    )
    try:
        conn.execute("SELECT set_config('statement_timeout', %s, true)", [str(int(timeout * 1000))])
    except BaseException:
        conn.close()
        raise
    return conn

"""PostgreSQL sessions with their identity, and signals that reach only the session that was planned.

A pid alone does not name a session: a pooled server connection runs one client's query after
another, and PostgreSQL reuses pids. :func:`read_sessions` reads every session with its
``backend_start``, ``xact_start`` and ``query_start`` in the same statement as the ages the plan uses;
:func:`signal_guarded` signals with one statement that re-checks them
(``... FROM pg_stat_activity WHERE pid = %s AND backend_start = %s AND ...``), so a session that
changed between plan and act is never signalled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

import psycopg

from toolkit.adapters.errors import TargetError
from toolkit.adapters.postgres import ACTIVITY_SQL, PostgresTarget, _backend, _connect
from toolkit.domain.runbooks.sessions import GUARD_COLUMNS, SessionKey
from toolkit.domain.snapshot import Backend

# The ages and the identities from one snapshot of pg_stat_activity (one statement).
SESSIONS_SQL = (
    "SELECT a.*, s.backend_start, s.xact_start, s.query_start "  # noqa: S608 - constants, no input
    f"FROM ({ACTIVITY_SQL}) a JOIN pg_stat_activity s USING (pid)"
)
_FUNCTIONS = {"cancel": "pg_cancel_backend", "terminate": "pg_terminate_backend"}
_TIMESTAMPS = ("backend_start", "xact_start", "query_start")


@dataclass(frozen=True)
class Signalled:
    """The outcome of one guarded signal: sent, or why not (``now`` is the session as it is now)."""

    sent: bool
    now: Mapping[str, str | None] | None = None


def _iso(value: object) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else None if value is None else str(value)


def read_sessions(target: PostgresTarget, timeout: float) -> tuple[list[Backend], dict[int, SessionKey]]:
    """Every session (but this one) and, by pid, its identity, read in one statement."""
    try:
        with _connect(target, timeout) as conn:
            cur = conn.execute(SESSIONS_SQL)
            names = [d.name for d in cur.description or ()]
            rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    except psycopg.Error as exc:
        raise TargetError.from_exception(target.label, "reading pg_stat_activity", exc, timeout) from None
    backends = [_backend(r) for r in rows]
    keys = {
        b.pid: SessionKey(_iso(r["backend_start"]) or "", _iso(r["xact_start"]), _iso(r["query_start"]))
        for b, r in zip(backends, rows, strict=True)
        if r["backend_start"] is not None
    }
    return backends, keys


def signal_guarded(
    target: PostgresTarget, pid: int, how: str, guard: Mapping[str, object], timeout: float
) -> Signalled:
    """Cancel or terminate ``pid`` only if it still has every value of ``guard``, in one statement.

    ``guard`` holds some of backend_start, xact_start, query_start (ISO text) and state; backend_start
    is required. When nothing was signalled, the session as it is now (or None, gone) is returned.
    """
    function = _FUNCTIONS[how]
    if "backend_start" not in guard or set(guard) - set(GUARD_COLUMNS):
        raise ValueError(f"a signal guard needs backend_start and only {', '.join(GUARD_COLUMNS)}")
    where = ["pid = %(pid)s"]
    for column in GUARD_COLUMNS:  # column names from the fixed list only; values as parameters
        if column in guard:
            cast = "::timestamptz" if column in _TIMESTAMPS else "::text"
            where.append(f"{column} IS NOT DISTINCT FROM %({column})s{cast}")
    params: dict[str, object] = {"pid": pid, **{k: None if v is None else str(v) for k, v in guard.items()}}
    sql = f"SELECT {function}(pid) FROM pg_stat_activity WHERE {' AND '.join(where)}"  # noqa: S608 - fixed names
    during = f"{function}({pid})"
    try:
        with _connect(target, timeout) as conn:
            row = conn.execute(sql, params).fetchone()
            if row is not None and row[0]:
                return Signalled(True)
            during = f"reading pid {pid} after {function} found it changed"
            now = conn.execute(
                "SELECT backend_start, xact_start, query_start, state FROM pg_stat_activity WHERE pid = %s",
                [pid],
            ).fetchone()
    except psycopg.Error as exc:
        raise TargetError.from_exception(target.label, during, exc, timeout) from None
    if now is None:
        return Signalled(False, None)
    return Signalled(
        False,
        {
            "backend_start": _iso(now[0]),
            "xact_start": _iso(now[1]),
            "query_start": _iso(now[2]),
            "state": None if now[3] is None else str(now[3]),
        },
    )

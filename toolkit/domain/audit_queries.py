"""Rank the statements of pg_stat_statements that over-fetch, and name the Django remedy.

Pure: takes statements (counters from pg_stat_statements plus the statement's shape, parsed at the
adapter boundary) and thresholds, returns findings with id ``orm.overfetching_query``. The rules are
documented in docs/checks.md (``orm.overfetching_query``); in short, a SELECT called at least
``min_calls`` times is a finding when

- A: it returns at least ``huge_rows_per_call`` rows per call, whatever its shape; or
- B: it returns at least ``rows_per_call`` rows per call and is unbounded (no LIMIT), wide
  (``SELECT *`` or at least ``columns`` columns), joined (at least ``joins`` joins) or fed by a long
  ``IN`` list (at least ``in_list`` parameters, the shape of an unscoped prefetch); or
- C: it returns at least ``wide_rows_per_call`` rows per call through at least ``wide_joins`` joins and
  ``SELECT *`` or at least ``wide_columns`` columns (an unscoped select_related chain on a list).

Findings are ranked by total execution time (what the database actually spent on the statement),
then by rows per call.

>>> shape = StatementShape("select", ("shop_order", "shop_customer", "shop_product"), 2, 31, False,
...                        False, False, False, 0)
>>> s = Statement(7, 40, 40 * 500, 900.0, 22.5, "SELECT ...", "app", "app", shape)
>>> [(f.evidence["queryid"], f.evidence["rows_per_call"]) for f in rank([s], Thresholds())]
[(7, 500.0)]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from toolkit.domain.findings import Finding, Severity

FINDING_ID = "orm.overfetching_query"
_SYSTEM_SCHEMAS = ("pg_catalog.", "information_schema.")


@dataclass(frozen=True)
class StatementShape:
    """What the parser saw in one statement's text (the outermost SELECT for counts)."""

    kind: str  # select, insert, update, delete, other
    tables: tuple[str, ...]  # every table read, schema-qualified when the text qualifies it
    joins: int  # JOIN clauses (a comma join counts as one)
    columns: int  # expressions in the outermost select list, a star not included
    star: bool  # SELECT * or t.*
    has_limit: bool
    has_where: bool
    keyed: bool  # WHERE ... = on a key column (id, pk or *_id) ANDed at the top
    in_list: int  # the longest IN (...) list
    error: str = ""  # why it could not be parsed (then kind is "other")


@dataclass(frozen=True)
class Statement:
    """One row of pg_stat_statements, its text already without literal values."""

    queryid: int | None
    calls: int
    rows: int
    total_ms: float
    mean_ms: float
    text: str
    user: str
    database: str
    shape: StatementShape

    @property
    def rows_per_call(self) -> float:
        """Rows returned per call (0 when never called)."""
        return self.rows / self.calls if self.calls else 0.0


@dataclass(frozen=True)
class Thresholds:
    """Where over-fetching starts; the reasons are in docs/checks.md."""

    min_calls: int = 5
    rows_per_call: float = 100
    huge_rows_per_call: float = 1000
    joins: int = 2
    columns: int = 20
    in_list: int = 100
    wide_rows_per_call: float = 10
    wide_joins: int = 3
    wide_columns: int = 40
    statement_chars: int = 400

    @property
    def lowest_rows_per_call(self) -> float:
        """No rule fires below this many rows per call (the adapter filters on it in SQL)."""
        return min(self.rows_per_call, self.huge_rows_per_call, self.wide_rows_per_call)


def is_system(shape: StatementShape) -> bool:
    """True when every table read is a catalogue (pg_stat_activity, information_schema ...).

    >>> is_system(StatementShape("select", ("pg_stat_activity",), 0, 3, False, False, False, False, 0))
    True
    >>> is_system(StatementShape("select", ("pg_class", "shop_order"), 1, 3, False, False, False, False, 0))
    False
    """
    if not shape.tables:
        return True  # SELECT 1, SELECT now(): nothing to over-fetch
    return all(t.startswith(("pg_", *_SYSTEM_SCHEMAS)) for t in shape.tables)


def reasons(stmt: Statement, th: Thresholds) -> tuple[str, ...]:
    """Why the statement over-fetches (rule letter first); empty when it does not."""
    shape = stmt.shape
    if shape.kind != "select" or stmt.calls < th.min_calls or is_system(shape):
        return ()
    rpc = stmt.rows_per_call
    per_call = f"{round(rpc, 1):g} rows per call"
    traits: list[str] = []
    if not shape.has_limit:
        traits.append("no LIMIT")
    if shape.star:
        traits.append("SELECT *")
    elif shape.columns >= th.columns:
        traits.append(f"{shape.columns} columns (>= {th.columns})")
    if shape.joins >= th.joins:
        traits.append(f"{shape.joins} joins (>= {th.joins})")
    if shape.in_list >= th.in_list:
        traits.append(f"IN list of {shape.in_list} (>= {th.in_list})")
    if rpc >= th.huge_rows_per_call:
        return (f"A: {per_call} (>= {th.huge_rows_per_call:g})", *traits)
    if rpc >= th.rows_per_call and traits:
        return (f"B: {per_call} (>= {th.rows_per_call:g})", *traits)
    wide = shape.star or shape.columns >= th.wide_columns
    if rpc >= th.wide_rows_per_call and shape.joins >= th.wide_joins and wide:
        columns = "SELECT *" if shape.star else f"{shape.columns} columns (>= {th.wide_columns})"
        rule = f"C: {per_call} (>= {th.wide_rows_per_call:g})"
        return (rule, columns, f"{shape.joins} joins (>= {th.wide_joins})")
    return ()


def remedies(stmt: Statement, th: Thresholds) -> tuple[str, ...]:
    """The Django remedies for what the statement does, most specific first."""
    shape = stmt.shape
    out: list[str] = []
    if shape.in_list >= th.in_list:
        out.append(
            "scope the prefetch: Prefetch('rel', queryset=Model.objects.only(...)) and fewer parent rows "
            "per page"
        )
    if shape.joins >= min(th.joins, th.wide_joins):
        out.append(
            "scope select_related to the relations the view reads (select_related('author'), not "
            "select_related() or a long chain)"
        )
    if shape.star or shape.columns >= min(th.columns, th.wide_columns):
        out.append("fetch only the fields used: .only(...) / .defer(...), or .values() / .values_list()")
    if stmt.rows_per_call >= th.rows_per_call:
        if shape.has_limit:
            out.append("lower the page size (the LIMIT), or aggregate in the database (.aggregate())")
        else:
            out.append(
                "paginate: Paginator or a slice (qs[:50]), or aggregate in the database "
                "(.count(), .aggregate(), .exists())"
            )
    return tuple(out)


def truncate(text: str, limit: int) -> str:
    """One line, at most ``limit`` characters, an ellipsis when cut.

    >>> truncate("SELECT a,\\n       b FROM t", 12)
    'SELECT a, b…'
    """
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def finding(stmt: Statement, why: Sequence[str], th: Thresholds, target: str, rank_no: int) -> Finding:
    """The finding for one over-fetching statement."""
    shape = stmt.shape
    columns: int | str = "*" if shape.star else shape.columns
    evidence: dict[str, Any] = {
        "rank": rank_no,
        "queryid": stmt.queryid,
        "database": stmt.database,
        "user": stmt.user,
        "calls": stmt.calls,
        "rows_per_call": round(stmt.rows_per_call, 1),
        "mean_ms": round(stmt.mean_ms, 3),
        "total_ms": round(stmt.total_ms, 1),
        "joins": shape.joins,
        "columns": columns,
        "tables": list(shape.tables),
        "has_limit": shape.has_limit,
        "reasons": list(why),
        "statement": truncate(stmt.text, th.statement_chars),
    }
    summary = (
        f"#{rank_no} queryid {stmt.queryid}: {stmt.rows_per_call:.0f} rows/call x {stmt.calls} calls, "
        f"{shape.joins} joins, {columns} columns, {stmt.total_ms:.0f} ms total; "
        f"{truncate(stmt.text, 90)}"
    )
    return Finding(FINDING_ID, Severity.WARNING, target, summary, evidence, "; ".join(remedies(stmt, th)))


def rank(
    statements: Iterable[Statement], th: Thresholds, target: str = "postgres", top: int | None = None
) -> list[Finding]:
    """The over-fetching statements as findings, the most expensive first (at most ``top``).

    Each finding's target is ``target/database`` (the database the statement ran in).
    """
    flagged = [(s, why) for s in statements if (why := reasons(s, th))]
    flagged.sort(key=lambda p: (-p[0].total_ms, -p[0].rows_per_call, p[0].queryid or 0))
    if top is not None:
        flagged = flagged[:top]
    return [
        finding(s, why, th, f"{target}/{s.database}" if s.database else target, i)
        for i, (s, why) in enumerate(flagged, start=1)
    ]


def candidate_databases(configured: str, pgbouncer_databases: Iterable[Any]) -> tuple[str, ...]:
    """Where to look for the pg_stat_statements view: the configured database, then those PgBouncer serves.

    The statistics are cluster-wide but the view exists only where the extension was created, often
    the application's database rather than ``postgres``.

    >>> candidate_databases("postgres", [{"name": "app", "dbname": "appdb"}, {"name": "app"}, "x"])
    ('postgres', 'appdb', 'app', 'x')
    """
    out: list[str] = [configured] if configured else []
    for entry in pgbouncer_databases:
        if isinstance(entry, Mapping):
            name = str(entry.get("dbname") or entry.get("name") or "")
        else:
            name = str(entry)
        if name and name not in out:
            out.append(name)
    return tuple(out)

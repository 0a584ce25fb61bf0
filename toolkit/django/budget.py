"""``query_budget``: hold a block or a test to a number of queries, joins, columns and rows.

Built on ``connection.execute_wrapper`` (Django's hook around every statement a connection runs):
each statement is executed, then measured:

- joins: parsed from the statement's SQL (toolkit.adapters.sql_shape, sqlglot);
- columns: ``len(cursor.description)``, the columns actually returned (it counts a ``SELECT *`` too),
  or the parsed select list when the driver gives no description;
- rows: ``cursor.rowcount`` after execute. With psycopg (2 or 3) and Django's default client-side
  cursors, the whole result is transferred during execute and rowcount is the number of rows the
  SELECT returned. SQLite's driver reports -1 for a SELECT, and a server-side cursor (``.iterator()``
  without DISABLE_SERVER_SIDE_CURSORS) reports no count: a budget with ``max_rows`` then stops with
  QueryBudgetUnmeasurable rather than pass without measuring.

A per-statement limit (joins, columns, rows) raises QueryBudgetExceeded at the statement; the number
of queries is checked when the block ends. Only the statements of ``connections[using]`` in the
current thread are seen (Django's connections are per thread).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, ContextDecorator
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from toolkit.adapters import sql_shape
from toolkit.domain.audit_queries import truncate

_SHOWN = 1000  # characters of a statement in a message (Django names every column)


class QueryBudgetExceeded(AssertionError):
    """A limit was exceeded: the message names the statement, the limit and the measured value."""


class QueryBudgetUnmeasurable(RuntimeError):
    """``max_rows`` was asked for, but the driver does not report how many rows a SELECT returned."""


@dataclass(frozen=True)
class Executed:
    """One statement run inside the budget, as measured (SQL with its placeholders, never its values)."""

    sql: str
    many: bool
    returns_rows: bool
    rows: int | None  # None: not a SELECT, or the driver does not say
    joins: int
    columns: int | None


class query_budget(ContextDecorator):  # lower case: used like a function, as override_settings is
    """Context manager and decorator: ``with query_budget(max_queries=3): ...`` or ``@query_budget(...)``.

    ``executed`` lists what ran (the latest block). Limits are inclusive: ``max_queries=3`` allows 3.
    """

    def __init__(
        self,
        max_queries: int | None = None,
        max_joins: int | None = None,
        max_columns: int | None = None,
        max_rows: int | None = None,
        using: str = "default",
    ) -> None:
        limits = {
            "max_queries": max_queries,
            "max_joins": max_joins,
            "max_columns": max_columns,
            "max_rows": max_rows,
        }
        for name, value in limits.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ValueError(f"query_budget: {name} must be a whole number of 0 or more, not {value!r}")
        self.max_queries = max_queries
        self.max_joins = max_joins
        self.max_columns = max_columns
        self.max_rows = max_rows
        self.using = using
        self.executed: list[Executed] = []
        self._hook: AbstractContextManager[Any] | None = None

    def _recreate_cm(self) -> query_budget:
        # Each call of a decorated function gets its own budget (and can run in parallel threads).
        return query_budget(self.max_queries, self.max_joins, self.max_columns, self.max_rows, self.using)

    def __enter__(self) -> query_budget:
        from django.db import connections  # type: ignore[import-untyped]  # noqa: PLC0415 - lazy

        self.executed = []
        self._hook = connections[self.using].execute_wrapper(self._measure)
        self._hook.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._hook is not None:
            self._hook.__exit__(exc_type, exc, tb)
            self._hook = None
        if exc_type is None and self.max_queries is not None and len(self.executed) > self.max_queries:
            listing = "\n".join(
                f"  {i}. {truncate(e.sql, _SHOWN)}" for i, e in enumerate(self.executed, start=1)
            )
            raise QueryBudgetExceeded(
                f"query budget exceeded: {len(self.executed)} queries, max_queries={self.max_queries} "
                f"(database {self.using!r}); the statements:\n{listing}"
            )

    def _measure(
        self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: dict[str, Any]
    ) -> Any:
        result = execute(sql, params, many, context)
        cursor = context["cursor"]
        shape = sql_shape.shape(sql)
        description = getattr(cursor, "description", None)
        returns_rows = description is not None
        rowcount = getattr(cursor, "rowcount", -1)
        rows = rowcount if returns_rows and isinstance(rowcount, int) and rowcount >= 0 else None
        if description:
            columns: int | None = len(description)
        else:
            columns = shape.columns if shape.kind == "select" and not shape.star else None
        done = Executed(sql, many, returns_rows, rows, shape.joins, columns)
        self.executed.append(done)
        self._check(done, len(self.executed), context, rowcount)
        return result

    def _check(self, done: Executed, number: int, context: dict[str, Any], rowcount: object) -> None:
        where = f"statement #{number} (database {self.using!r}): {truncate(done.sql, _SHOWN)}"
        if self.max_joins is not None and done.joins > self.max_joins:
            raise QueryBudgetExceeded(
                f"query budget exceeded: {done.joins} joins, max_joins={self.max_joins}, in {where}"
            )
        if self.max_columns is not None and done.columns is not None and done.columns > self.max_columns:
            raise QueryBudgetExceeded(
                f"query budget exceeded: {done.columns} columns, max_columns={self.max_columns}, in {where}"
            )
        if self.max_rows is None or not done.returns_rows:
            return
        if done.rows is None:
            vendor = getattr(context.get("connection"), "vendor", "this")
            raise QueryBudgetUnmeasurable(
                f"query budget: max_rows cannot be checked: the {vendor} driver reports rowcount "
                f"{rowcount!r} for {where}; measure rows on PostgreSQL with client-side cursors"
            )
        if done.rows > self.max_rows:
            raise QueryBudgetExceeded(
                f"query budget exceeded: {done.rows} rows, max_rows={self.max_rows}, in {where}"
            )

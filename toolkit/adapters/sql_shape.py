"""Parse one SQL statement with sqlglot into the plain shape the query audit and budgets reason about.

Accepts the text pg_stat_statements keeps (constants replaced by ``$1``, ``$2`` ...) and the text
Django executes (``%s`` placeholders). Counts come from the outermost SELECT (the select list and
LIMIT) and from the whole tree (tables, joins, IN lists). Also removes any literal value still in a
statement's text before it is shown.

>>> s = shape('SELECT "o"."id", "c"."name" FROM "o" JOIN "c" ON ("o"."c_id" = "c"."id") WHERE "o"."id" = $1')
>>> (s.kind, s.tables, s.joins, s.columns, s.star, s.has_limit, s.keyed)
('select', ('o', 'c'), 1, 2, False, False, True)
>>> redact("SELECT * FROM t WHERE name = 'secret' AND n = 42 AND id IN ($1,$2)")
"SELECT * FROM t WHERE name = '?' AND n = ? AND id IN ($1,$2)"
"""

from __future__ import annotations

import functools
import logging
import re

import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from toolkit.domain.audit_queries import StatementShape

# sqlglot 30 reads "$3,$4" as the start of a dollar-quoted string: give each $n room to stand alone.
_DOLLAR_PARAM = re.compile(r"\$(\d+)")
_KINDS: tuple[tuple[type[exp.Expression], str], ...] = (
    (exp.Select, "select"),
    (exp.SetOperation, "select"),
    (exp.Insert, "insert"),
    (exp.Update, "update"),
    (exp.Delete, "delete"),
)
_VALUES = (exp.Parameter, exp.Placeholder, exp.Literal)
_STRINGS = frozenset(
    {"STRING", "BYTE_STRING", "HEREDOC_STRING", "NATIONAL_STRING", "RAW_STRING", "BIT_STRING", "HEX_STRING"}
    | {"UNICODE_STRING"}
)


# Only these statements have a shape worth reading; the rest (ALTER ROLE ... PASSWORD, SET, COPY) are
# never handed to the parser, whose warnings quote the statement's text.
_PARSED = re.compile(r"\s*\(*\s*(select|with|insert|update|delete|values|table)\b", re.IGNORECASE)


class _NoStatementText(logging.Filter):
    """Drop sqlglot's "'<statement>' contains unsupported syntax" warnings: they would print the text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "unsupported syntax" not in record.getMessage()


logging.getLogger("sqlglot").addFilter(_NoStatementText())


def _unparsed(why: str) -> StatementShape:
    return StatementShape("other", (), 0, 0, False, False, False, False, 0, error=why)


@functools.lru_cache(maxsize=4096)
def shape(text: str) -> StatementShape:
    """The shape of the first statement in ``text``; kind "other" with ``error`` when it cannot be parsed."""
    if not _PARSED.match(text):
        return _unparsed("not a query")
    try:
        parsed = [e for e in sqlglot.parse(_DOLLAR_PARAM.sub(r" $\1 ", text), read="postgres") if e]
    except (SqlglotError, RecursionError, ValueError) as exc:
        return _unparsed(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
    if not parsed:
        return _unparsed("empty statement")
    tree = parsed[0]
    kind = next((name for cls, name in _KINDS if isinstance(tree, cls)), "other")
    outer = tree
    while isinstance(outer, (exp.SetOperation, exp.Subquery)):
        outer = outer.left if isinstance(outer, exp.SetOperation) else outer.this
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    tables: list[str] = []
    for table in tree.find_all(exp.Table):
        if not table.name or table.name in ctes:
            continue
        name = f"{table.db}.{table.name}" if table.db else table.name
        if name not in tables:
            tables.append(name)
    columns, star = 0, False
    if isinstance(outer, exp.Select):
        for item in outer.expressions:
            if isinstance(item, exp.Star) or (isinstance(item, exp.Column) and item.is_star):
                star = True
            else:
                columns += 1
    where = outer.args.get("where")
    has_limit = any(n.args.get("limit") or n.args.get("fetch") for n in (tree, outer))
    return StatementShape(
        kind=kind,
        tables=tuple(tables),
        joins=sum(1 for _ in tree.find_all(exp.Join)),
        columns=columns,
        star=star,
        has_limit=bool(has_limit),
        has_where=where is not None,
        keyed=where is not None and _keyed(where.this),
        in_list=max((len(i.expressions) for i in tree.find_all(exp.In)), default=0),
    )


def _keyed(condition: exp.Expression) -> bool:
    """An equality on a key column (id, pk, *_id) against a value, ANDed at the top of WHERE."""
    for node in condition.flatten() if isinstance(condition, exp.And) else (condition,):
        part = node.unnest()
        if not isinstance(part, exp.EQ):
            continue
        for column, value in ((part.this, part.expression), (part.expression, part.this)):
            if isinstance(column, exp.Column) and isinstance(value, _VALUES):
                name = column.name.lower()
                if name in {"id", "pk"} or name.endswith("_id"):
                    return True
    return False


def redact(text: str) -> str:
    """The statement with every string and number literal replaced by ``?``; parameters ($n, %s) stay.

    pg_stat_statements already replaces the constants of the statements it normalises; this is the
    second line of defence. Text that cannot be tokenised is withheld rather than shown.
    """
    # "$1" -> "?1", same length: the token offsets stay those of the original text.
    probe = _DOLLAR_PARAM.sub(lambda m: "?" + m.group(1), text)
    try:
        tokens = sqlglot.tokenize(probe, read="postgres")
    except (SqlglotError, RecursionError, ValueError):
        return "(statement withheld: it could not be tokenised to remove its literal values)"
    out: list[str] = []
    last = 0
    for token in tokens:
        kind = token.token_type.name
        after_param = token.start > 0 and probe[token.start - 1] == "?" and text[token.start - 1] == "$"
        if kind in _STRINGS or (kind == "NUMBER" and not after_param):
            out.append(text[last : token.start])
            out.append("'?'" if kind in _STRINGS else "?")
            last = token.end + 1
    out.append(text[last:])
    return "".join(out)

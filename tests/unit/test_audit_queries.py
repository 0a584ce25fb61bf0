"""The over-fetching rules, the ranking and the remedies (pure), and the SQL shapes they read."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from toolkit.adapters.sql_shape import redact, shape
from toolkit.domain.audit_queries import (
    FINDING_ID,
    Statement,
    StatementShape,
    Thresholds,
    candidate_databases,
    rank,
    reasons,
    remedies,
    truncate,
)
from toolkit.domain.findings import Severity

TH = Thresholds()
LIST = StatementShape("select", ("shop_order",), 0, 8, False, False, False, False, 0)


def _stmt(shape_: StatementShape = LIST, calls: int = 10, rows_per_call: float = 1.0, **kw: Any) -> Statement:
    base = {"queryid": 1, "total_ms": 100.0, "mean_ms": 10.0, "text": "SELECT ...", "user": "app"}
    base["database"] = "app"
    base.update(kw)
    return Statement(calls=calls, rows=round(calls * rows_per_call), shape=shape_, **base)


def _s(**kw: Any) -> StatementShape:
    return replace(LIST, **kw)


# (case, shape, calls, rows per call, the rule that fires or None)
RULES: list[tuple[str, StatementShape, int, float, str | None]] = [
    ("narrow keyed lookup", _s(columns=2, has_limit=True, keyed=True, has_where=True), 1000, 1, None),
    ("too few calls", _s(), 4, 5000, None),
    ("exactly min_calls", _s(), 5, 5000, "A"),
    ("huge rows, narrow, with LIMIT", _s(columns=1, has_limit=True), 10, 1000, "A"),
    ("just under huge, narrow, with LIMIT", _s(columns=1, has_limit=True), 10, 999, None),
    ("many rows, no LIMIT", _s(), 10, 100, "B"),
    ("just under many rows, no LIMIT", _s(), 10, 99.9, None),
    ("many rows, LIMIT, narrow", _s(has_limit=True), 10, 500, None),
    ("many rows, LIMIT, SELECT *", _s(has_limit=True, star=True, columns=0), 10, 500, "B"),
    ("many rows, LIMIT, 20 columns", _s(has_limit=True, columns=20), 10, 500, "B"),
    ("many rows, LIMIT, 19 columns", _s(has_limit=True, columns=19), 10, 500, None),
    ("many rows, LIMIT, 2 joins", _s(has_limit=True, joins=2), 10, 500, "B"),
    ("many rows, LIMIT, 1 join", _s(has_limit=True, joins=1), 10, 500, None),
    ("many rows, LIMIT, IN list of 100", _s(has_limit=True, in_list=100), 10, 150, "B"),
    ("many rows, LIMIT, IN list of 99", _s(has_limit=True, in_list=99), 10, 150, None),
    ("page through 3 joins, 40 columns", _s(has_limit=True, joins=3, columns=40), 10, 25, "C"),
    ("page through 3 joins, SELECT *", _s(has_limit=True, joins=3, star=True), 10, 10, "C"),
    ("page through 3 joins, 39 columns", _s(has_limit=True, joins=3, columns=39), 10, 25, None),
    ("page through 2 joins, 60 columns", _s(has_limit=True, joins=2, columns=60), 10, 25, None),
    ("9 rows through 5 joins, 80 columns", _s(has_limit=True, joins=5, columns=80), 10, 9, None),
    ("an UPDATE touching many rows", _s(kind="update"), 10, 5000, None),
    ("an unparsed statement", _s(kind="other", error="syntax"), 10, 5000, None),
    ("the catalogue", _s(tables=("pg_stat_activity",)), 10, 5000, None),
    ("information_schema", _s(tables=("information_schema.columns",)), 10, 5000, None),
    ("no table at all", _s(tables=()), 10, 5000, None),
    ("catalogue joined to an app table", _s(tables=("pg_class", "shop_order")), 10, 5000, "A"),
]


@pytest.mark.parametrize(("case", "shape_", "calls", "rpc", "rule"), RULES, ids=[r[0] for r in RULES])
def test_rules(case: str, shape_: StatementShape, calls: int, rpc: float, rule: str | None) -> None:
    why = reasons(_stmt(shape_, calls, rpc), TH)
    assert (why[0][0] if why else None) == rule, (case, why)


def test_min_calls_comes_from_the_thresholds() -> None:
    stmt = _stmt(_s(), calls=3, rows_per_call=5000)
    assert reasons(stmt, TH) == ()
    assert reasons(stmt, Thresholds(min_calls=3))[0].startswith("A: 5000 rows per call")


def test_reasons_list_every_trait() -> None:
    shape_ = _s(star=True, joins=2, in_list=120)
    assert reasons(_stmt(shape_, 10, 250), TH) == (
        "B: 250 rows per call (>= 100)",
        "no LIMIT",
        "SELECT *",
        "2 joins (>= 2)",
        "IN list of 120 (>= 100)",
    )


# (case, shape, rows per call, the remedies' opening words)
REMEDIES: list[tuple[str, StatementShape, float, list[str]]] = [
    ("unbounded narrow list", _s(columns=3), 500, ["paginate"]),
    ("page too large", _s(columns=3, has_limit=True), 500, ["lower the page size"]),
    ("wide page", _s(columns=30, has_limit=True), 50, ["fetch only the fields"]),
    ("star", _s(star=True, has_limit=True), 50, ["fetch only the fields"]),
    ("select_related chain", _s(joins=3, columns=10, has_limit=True), 50, ["scope select_related"]),
    ("unscoped prefetch", _s(in_list=300, columns=5), 2000, ["scope the prefetch", "paginate"]),
    (
        "everything",
        _s(joins=4, star=True, in_list=200),
        2000,
        ["scope the prefetch", "scope select_related", "fetch only the fields", "paginate"],
    ),
]


@pytest.mark.parametrize(("case", "shape_", "rpc", "starts"), REMEDIES, ids=[r[0] for r in REMEDIES])
def test_remedies(case: str, shape_: StatementShape, rpc: float, starts: list[str]) -> None:
    got = remedies(_stmt(shape_, 10, rpc), TH)
    assert len(got) == len(starts), (case, got)
    assert all(r.startswith(s) for r, s in zip(got, starts, strict=True)), (case, got)


def test_ranking_is_by_total_time_then_rows_per_call_and_top_cuts() -> None:
    wide = _s(star=True, joins=2)
    stmts = [
        _stmt(wide, 10, 500, queryid=1, total_ms=50.0),
        _stmt(wide, 10, 200, queryid=2, total_ms=900.0),
        _stmt(wide, 10, 800, queryid=3, total_ms=900.0),
        _stmt(_s(columns=2, has_limit=True, keyed=True), 10_000, 1, queryid=4, total_ms=99_999.0),
        _stmt(wide, 10, 300, queryid=5, total_ms=400.0),
    ]
    assert [f.evidence["queryid"] for f in rank(stmts, TH)] == [3, 2, 5, 1]
    top = rank(stmts, TH, "postgres@db:5432", top=2)
    assert [(f.evidence["queryid"], f.evidence["rank"]) for f in top] == [(3, 1), (2, 2)]


def test_the_finding_carries_the_evidence_and_the_remedy() -> None:
    shape_ = StatementShape("select", ("shop_order", "shop_customer", "shop_product"), 2, 31, False, False,
                            True, False, 0)  # fmt: skip
    text = "SELECT " + ", ".join(f'"shop_order"."c{i}"' for i in range(31)) + " FROM shop_order WHERE x = $1"
    stmt = Statement(42, 8, 8 * 400, 1234.56, 154.32, text, "app", "shop", shape_)
    (f,) = rank([stmt], TH, "postgres@10.0.0.5:5432")
    assert f.id == FINDING_ID and f.severity is Severity.WARNING
    assert f.target == "postgres@10.0.0.5:5432/shop"
    ev = f.evidence
    keys = ("queryid", "calls", "rows_per_call", "mean_ms", "total_ms", "joins", "columns")
    assert {k: ev[k] for k in keys} == {
        "queryid": 42, "calls": 8, "rows_per_call": 400.0, "mean_ms": 154.32, "total_ms": 1234.6, "joins": 2,
        "columns": 31,
    }  # fmt: skip
    assert ev["tables"] == ["shop_order", "shop_customer", "shop_product"]
    assert len(ev["statement"]) == TH.statement_chars and ev["statement"].endswith("…")
    assert f.summary.startswith("#1 queryid 42: 400 rows/call x 8 calls, 2 joins, 31 columns, 1235 ms total;")
    assert "select_related('author')" in f.remedy and ".only(" in f.remedy and "Paginator" in f.remedy


def test_candidate_databases() -> None:
    assert candidate_databases("postgres", []) == ("postgres",)
    assert candidate_databases("postgres", [{"name": "app", "dbname": "app"}, {"name": "app"}]) == (
        "postgres",
        "app",
    )
    assert candidate_databases("", [{"name": "alias", "dbname": "real"}, "plain", {}]) == ("real", "plain")


def test_truncate() -> None:
    assert truncate("a  b\n c", 10) == "a b c"
    assert truncate("x" * 20, 5) == "xxxx…"


# Shapes of real statements: Django's own SQL (%s) and pg_stat_statements' normalised text ($n).
SHAPES: list[tuple[str, dict[str, Any]]] = [
    (
        'SELECT "shop_order"."id", "shop_order"."customer_id", "shop_customer"."id", "shop_customer"."name", '
        '"shop_product"."id" FROM "shop_order" INNER JOIN "shop_customer" ON ("shop_order"."customer_id" = '
        '"shop_customer"."id") LEFT OUTER JOIN "shop_product" '
        'ON ("shop_order"."product_id" = "shop_product"."id") '
        'ORDER BY "shop_order"."id" DESC',
        {
            "tables": ("shop_order", "shop_customer", "shop_product"),
            "joins": 2,
            "columns": 5,
            "has_limit": False,
        },
    ),
    (
        'SELECT "shop_order"."id" FROM "shop_order" WHERE "shop_order"."id" = %s LIMIT 21',
        {"columns": 1, "has_limit": True, "keyed": True, "has_where": True},
    ),
    (
        'SELECT ("shop_tag_orders"."order_id") AS "_prefetch_related_val_order_id", "shop_tag"."id" '
        'FROM "shop_tag" INNER JOIN "shop_tag_orders" ON ("shop_tag"."id" = "shop_tag_orders"."tag_id") '
        'WHERE "shop_tag_orders"."order_id" IN ($1, $2, $3,$4,$5)',
        {"joins": 1, "columns": 2, "in_list": 5, "keyed": False},
    ),
    ("SELECT * FROM a, b WHERE a.b_id = $1", {"star": True, "joins": 1, "columns": 0, "keyed": True}),
    ("SELECT a.*, b.x FROM a JOIN b ON a.id = b.a_id", {"star": True, "columns": 1}),
    ("WITH c AS (SELECT id FROM t) SELECT * FROM c JOIN u ON u.id = c.id", {"tables": frozenset({"t", "u"})}),
    (
        "SELECT x FROM s.t UNION ALL SELECT y FROM u ORDER BY 1 LIMIT $1",
        {"tables": ("s.t", "u"), "has_limit": True},
    ),
    ("SELECT x FROM t FETCH FIRST 5 ROWS ONLY", {"has_limit": True}),
    ("UPDATE t SET a = $1 WHERE id = $2", {"kind": "update", "keyed": True}),
    ("INSERT INTO t (a) VALUES ($1)", {"kind": "insert"}),
    ("DELETE FROM t WHERE id = ANY($1)", {"kind": "delete", "keyed": False}),
    ("ALTER ROLE app PASSWORD 'x'", {"kind": "other", "error": "not a query"}),
    ("SELECT FROM WHERE (((", {"kind": "other"}),
]


@pytest.mark.parametrize(("text", "expected"), SHAPES, ids=[t[:40] for t, _ in SHAPES])
def test_shapes(text: str, expected: dict[str, Any]) -> None:
    got = shape(text)
    for key, value in expected.items():
        actual = getattr(got, key)
        assert (frozenset(actual) if isinstance(value, frozenset) else actual) == value, (key, got)
    if "kind" not in expected:
        assert got.kind == "select"


REDACT = [
    ("SELECT a FROM t WHERE id = $1 AND b IN ($2,$3)", "SELECT a FROM t WHERE id = $1 AND b IN ($2,$3)"),
    ("SELECT a FROM t WHERE s = 'x''y' AND n = 4.5e3", "SELECT a FROM t WHERE s = '?' AND n = ?"),
    ("SELECT $$dollar$$, $q$tag$q$, E'e\\'x', X'1F'", "SELECT '?', '?', '?', '?'"),
    ("SELECT a FROM t WHERE id = %s", "SELECT a FROM t WHERE id = %s"),
    ("SELECT c1, t2.c3 FROM t2", "SELECT c1, t2.c3 FROM t2"),
]


@pytest.mark.parametrize(("text", "expected"), REDACT)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_redact_withholds_what_it_cannot_tokenise() -> None:
    assert redact("SELECT 'unterminated").startswith("(statement withheld")


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_no_string_literal_survives_redaction(value: str) -> None:
    quoted = value.replace("'", "''")
    out = redact(f'SELECT "zz" FROM "zz" WHERE "zz" = \'{quoted}\' AND "zz" = $1')
    assert out == 'SELECT "zz" FROM "zz" WHERE "zz" = \'?\' AND "zz" = $1' or out.startswith(
        "(statement withheld"
    )

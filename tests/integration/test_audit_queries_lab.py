"""``toolkit audit queries`` against the lab's pg_stat_statements, with statements of our own.

The tables live in a schema of their own (``audit_queries_test``) in the app database, created and
dropped by the test, straight on PostgreSQL as the app user. Other people use the lab at the same
time: the test never resets pg_stat_statements and never assumes its statement is first overall; it
identifies its statements by queryid (EXPLAIN VERBOSE prints the identifier pg_stat_statements uses).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import BIN, DB_HOST, LAB_INVENTORY, ROOT, address, lab_secret

pytestmark = pytest.mark.integration

SCHEMA = "audit_queries_test"
SECRET_LITERAL = "literal-never-shown-7f3a"
WIDE = f"""
SELECT * FROM {SCHEMA}.orders o
JOIN {SCHEMA}.customer c ON c.id = o.customer_id
JOIN {SCHEMA}.product p ON p.id = o.product_id
WHERE o.qty >= %s AND c.name <> '{SECRET_LITERAL}'
"""
NARROW = f"SELECT o.id, o.qty FROM {SCHEMA}.orders o WHERE o.id = %s"
ORDERS = 600
CALLS = 6


def _direct(user: str, password: str) -> psycopg.Connection[Any]:
    """The app role through pgb1 (PostgreSQL admits it only from the PgBouncer hosts); the monitoring
    role straight to db1 (admitted from this machine)."""
    host, port = (address("pgb1"), 6432) if user == "app" else (address(DB_HOST), 5432)
    return psycopg.connect(
        host=host,
        port=port,
        dbname="app",
        user=user,
        password=password,
        autocommit=True,
        prepare_threshold=None,
    )


def _query_id(conn: psycopg.Connection[Any], statement: str, param: int) -> int:
    plan = conn.execute(f"EXPLAIN (VERBOSE, FORMAT JSON) {statement}", [param]).fetchone()
    assert plan is not None
    return int(plan[0][0]["Query Identifier"])


@pytest.fixture(scope="module")
def statements() -> Iterator[dict[str, int]]:
    """Run the over-fetching statement and the keyed one CALLS times each; their queryids."""
    with _direct("app", lab_secret("app_password")) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        conn.execute(f"CREATE SCHEMA {SCHEMA}")
        try:
            conn.execute(
                f"""
                CREATE TABLE {SCHEMA}.customer (id int PRIMARY KEY, name text, email text, notes text);
                CREATE TABLE {SCHEMA}.product (id int PRIMARY KEY, title text, body text, price numeric);
                CREATE TABLE {SCHEMA}.orders (id int PRIMARY KEY, customer_id int, product_id int, qty int,
                                              note text, created timestamptz DEFAULT now());
                INSERT INTO {SCHEMA}.customer SELECT i, 'c' || i, i || '@example.test', repeat('n', 50)
                    FROM generate_series(1, 20) i;
                INSERT INTO {SCHEMA}.product SELECT i, 'p' || i, repeat('d', 80), i
                    FROM generate_series(1, 20) i;
                INSERT INTO {SCHEMA}.orders SELECT i, 1 + i % 20, 1 + i % 7, 1 + i % 3, 'note'
                    FROM generate_series(1, {ORDERS}) i;
                """
            )
            ids = {"wide": _query_id(conn, WIDE, 1), "narrow": _query_id(conn, NARROW, 1)}
            for i in range(CALLS):
                assert len(conn.execute(WIDE, [1]).fetchall()) == ORDERS
                assert len(conn.execute(NARROW, [i + 1]).fetchall()) == 1
            yield ids
        finally:
            conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")


def _audit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "toolkit"), "audit", "queries", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )


def test_the_over_fetching_statement_is_ranked_and_the_keyed_one_is_not(statements: dict[str, int]) -> None:
    proc = _audit("-i", str(LAB_INVENTORY), "--format", "json", "--top", "1000")
    assert proc.returncode in (1, 2), proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["schema"] == "toolkit.audit/v1"
    assert doc["source"]["database"] == "app" and doc["source"]["read_all_stats"] is True
    assert doc["source"]["hidden"] == 0
    ranked = [f["evidence"]["queryid"] for f in doc["findings"]]
    assert statements["wide"] in ranked
    assert statements["narrow"] not in ranked
    mine = doc["findings"][ranked.index(statements["wide"])]
    ev = mine["evidence"]
    assert mine["id"] == "orm.overfetching_query" and mine["severity"] == "warning"
    assert ev["calls"] >= CALLS and ev["rows_per_call"] == ORDERS
    assert ev["joins"] == 2 and ev["columns"] == "*"
    assert ev["tables"] == [f"{SCHEMA}.orders", f"{SCHEMA}.customer", f"{SCHEMA}.product"]
    assert ev["reasons"][0].startswith("B: 600 rows per call")
    assert "$1" in ev["statement"] and "$2" in ev["statement"]
    assert SECRET_LITERAL not in proc.stdout
    assert "select_related" in mine["remedy"] and ".only(" in mine["remedy"] and "paginate" in mine["remedy"]
    assert mine["target"] == f"postgres@{address(DB_HOST)}:5432/app"


def test_table_output_names_the_statement(statements: dict[str, int]) -> None:
    proc = _audit("-i", str(LAB_INVENTORY), "--top", "1000")
    assert proc.returncode in (1, 2), proc.stderr
    assert f"queryid {statements['wide']}" in " ".join(proc.stdout.split())
    assert "orm.overfetching_query" in proc.stdout


def test_a_database_without_the_extension_is_one_line_and_exit_3() -> None:
    proc = _audit("-i", str(LAB_INVENTORY), "--dbname", "postgres")
    assert proc.returncode == 3
    assert proc.stdout == ""
    assert proc.stderr == (
        f"toolkit: postgres@{address(DB_HOST)}:5432: the pg_stat_statements extension is not installed "
        "in database "
        "postgres during looking for pg_stat_statements; as a superuser run CREATE EXTENSION "
        "pg_stat_statements in the application's database (it also needs pg_stat_statements in "
        "shared_preload_libraries), or pass --dbname\n"
    )


def test_a_role_without_pg_read_all_stats_is_told_what_it_cannot_see(
    statements: dict[str, int], tmp_path: Path
) -> None:
    # Something of another role's above the thresholds: the monitoring role's own wide read.
    with _direct("toolkit_monitor", lab_secret("monitor_password")) as conn:
        for _ in range(CALLS):
            conn.execute("SELECT a.pid, g FROM pg_stat_activity a, generate_series(1, 150) g").fetchall()
    # The same inventory, read as the app role (no pg_read_all_stats).
    inventory = tmp_path / "inventory" / "lab"
    shutil.copytree(LAB_INVENTORY, inventory)
    (inventory / "group_vars" / "pgbouncer" / "audit_as_app.yml").write_text("toolkit_postgres_user: app\n")
    # PostgreSQL admits the app role only from the PgBouncer hosts: read through pgb1 (one statement).
    (inventory / "group_vars" / "all" / "zz_through_pgb1.yml").write_text(
        f"database_host: {address('pgb1')}\ndatabase_port: 6432\n"
    )
    env = {**os.environ, "TOOLKIT_POSTGRES_PASSWORD": lab_secret("app_password")}
    # Through PgBouncer only the pooled database exists (the audit's default also tries 'postgres').
    proc = _audit("-i", str(inventory), "--format", "json", "--top", "1000", "--dbname", "app", env=env)
    assert proc.returncode == 3, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "unknown"
    assert doc["source"]["read_all_stats"] is False and doc["source"]["hidden"] >= 1
    assert "GRANT pg_read_all_stats (or pg_monitor) TO app" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1
    # The app role still sees its own statements.
    assert statements["wide"] in [f["evidence"]["queryid"] for f in doc["findings"]]


# Query budgets on PostgreSQL through the lab's PgBouncer (transaction mode), in a process of its own
# (Django's settings are per process). The table is a temporary one, dropped at commit: everything
# runs inside one transaction, so PgBouncer keeps it on one server connection and nobody else sees it.
BUDGET_SCRIPT = """
import json, os
import django
from django.conf import settings

settings.configure(USE_TZ=True, DATABASES={"default": {
    "ENGINE": "django.db.backends.postgresql", "HOST": os.environ["BUDGET_TEST_HOST"], "PORT": 6432,
    "NAME": "app",
    "USER": "app", "PASSWORD": os.environ["BUDGET_TEST_PASSWORD"], "DISABLE_SERVER_SIDE_CURSORS": True,
    "TIME_ZONE": "Etc/UTC", "OPTIONS": {"application_name": "toolkit-query-budget-test"}}})
django.setup()
from django.db import connection, models, transaction
from toolkit.django import QueryBudgetExceeded, query_budget


class Item(models.Model):
    name = models.TextField()
    note = models.TextField()

    class Meta:
        app_label = "budget_lab"
        db_table = "budget_item"
        managed = False


out = {}
with transaction.atomic():
    with connection.cursor() as c:
        c.execute("CREATE TEMP TABLE budget_item (id int PRIMARY KEY, name text, note text) ON COMMIT DROP")
        c.execute("INSERT INTO budget_item SELECT i, 'n' || i, 'x' FROM generate_series(1, 300) i")
    with query_budget(max_queries=2, max_rows=300, max_columns=3) as budget:
        out["fetched"] = len(list(Item.objects.filter(id__gt=0)))
        Item.objects.filter(pk=5).first()
    out["measured"] = [[e.rows, e.columns] for e in budget.executed]
    try:
        with query_budget(max_rows=299):
            list(Item.objects.filter(id__gt=0))
    except QueryBudgetExceeded as exc:
        out["error"] = str(exc)
print(json.dumps(out))
"""


def test_query_budget_counts_rows_on_postgresql_through_pgbouncer() -> None:
    env = {
        **os.environ,
        "BUDGET_TEST_PASSWORD": lab_secret("app_password"),
        "BUDGET_TEST_HOST": address("pgb1"),
        "PYTHONPATH": str(ROOT),
    }
    done = subprocess.run(
        [str(BIN / "python"), "-c", BUDGET_SCRIPT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["fetched"] == 300
    assert out["measured"] == [[300, 3], [1, 3]]
    assert out["error"].startswith(
        "query budget exceeded: 300 rows, max_rows=299, in statement #1 (database 'default'): "
        'SELECT "budget_item"."id", "budget_item"."name", "budget_item"."note" FROM "budget_item" '
        'WHERE "budget_item"."id" > %s'
    )

"""``toolkit.django.query_budget`` on a real database: SQLite in memory, through Django's ORM.

Django is configured here (settings.configure) with an in-memory SQLite ``default`` and, for the
integration test of rows through PgBouncer, a ``lab`` alias that is only connected there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from asgiref.sync import async_to_sync
from django.conf import settings

ROOT = Path(__file__).resolve().parents[2]
LAB_PASSWORD = ROOT / ".lab" / "app_password"


def configure_django() -> None:
    """Configure Django once per process: SQLite ``default``, and the lab's app database as ``lab``."""
    if settings.configured:
        return
    settings.configure(
        USE_TZ=True,
        INSTALLED_APPS=[],
        DATABASES={
            "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
            "lab": {
                "ENGINE": "django.db.backends.postgresql",
                "HOST": "127.0.0.1",
                "PORT": 6432,
                "NAME": "app",
                "USER": "app",
                "PASSWORD": LAB_PASSWORD.read_text().strip() if LAB_PASSWORD.exists() else "",
                # Transaction pooling: no server-side cursors, and the server's own zone (no SET TIME ZONE).
                "DISABLE_SERVER_SIDE_CURSORS": True,
                "TIME_ZONE": "Etc/UTC",
                "OPTIONS": {"application_name": "toolkit-query-budget-test"},
            },
        },
    )
    django.setup()


configure_django()

from django.db import connection, models  # noqa: E402

from toolkit.django import QueryBudgetExceeded, QueryBudgetUnmeasurable, query_budget  # noqa: E402


class Author(models.Model):
    name = models.CharField(max_length=50)
    bio = models.TextField(default="")

    class Meta:
        app_label = "budget_tests"


class Book(models.Model):
    title = models.CharField(max_length=50)
    author = models.ForeignKey(Author, on_delete=models.CASCADE)

    class Meta:
        app_label = "budget_tests"


class Review(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE)
    stars = models.IntegerField()

    class Meta:
        app_label = "budget_tests"


@pytest.fixture(scope="module", autouse=True)
def tables() -> Iterator[None]:
    with connection.schema_editor() as editor:
        for model in (Author, Book, Review):
            editor.create_model(model)
    author = Author.objects.create(name="a")
    books = [Book.objects.create(title=f"b{i}", author=author) for i in range(3)]
    for book in books:
        Review.objects.bulk_create([Review(book=book, stars=s) for s in range(4)])
    yield
    with connection.schema_editor() as editor:
        for model in (Review, Book, Author):
            editor.delete_model(model)


def test_within_budget_passes_and_records_what_ran() -> None:
    with query_budget(max_queries=2, max_joins=2, max_columns=9) as budget:
        assert len(list(Review.objects.select_related("book__author"))) == 12
        assert Book.objects.count() == 3
    assert [(e.joins, e.columns, e.returns_rows) for e in budget.executed] == [(2, 9, True), (0, 1, True)]
    assert "%s" not in budget.executed[0].sql  # no parameters in that one; the next test has some


def test_limits_are_inclusive() -> None:
    with query_budget(max_queries=1, max_joins=2, max_columns=9):
        list(Review.objects.select_related("book__author"))


def test_too_many_queries_fail_at_the_end_naming_every_statement() -> None:
    ran_to_the_end = False
    with pytest.raises(QueryBudgetExceeded) as exc, query_budget(max_queries=2):
        for book in Book.objects.all():  # the N+1 pattern: one query per book
            list(book.review_set.all())
        ran_to_the_end = True
    assert ran_to_the_end
    assert isinstance(exc.value, AssertionError)
    message = str(exc.value)
    assert message.startswith("query budget exceeded: 4 queries, max_queries=2 (database 'default'); ")
    lines = message.splitlines()
    assert len(lines) == 5 and lines[1].startswith('  1. SELECT "budget_tests_book"."id"')
    assert lines[2].endswith('WHERE "budget_tests_review"."book_id" = %s')


def test_a_join_over_budget_stops_at_the_statement() -> None:
    after = False
    with pytest.raises(QueryBudgetExceeded) as exc, query_budget(max_joins=1):
        list(Review.objects.select_related("book__author"))
        after = True
    assert not after
    assert str(exc.value).startswith(
        "query budget exceeded: 2 joins, max_joins=1, in statement #1 (database 'default'): "
        'SELECT "budget_tests_review"."id"'
    )


def test_columns_are_counted_from_what_the_cursor_returns() -> None:
    over = r"^query budget exceeded: 3 columns, max_columns=2, in "
    with (
        pytest.raises(QueryBudgetExceeded, match=over),
        query_budget(max_columns=2),
        connection.cursor() as c,
    ):
        c.execute("SELECT * FROM budget_tests_author")  # the star expands to 3 columns
    with query_budget(max_columns=2):
        list(Author.objects.values_list("id", "name"))


def test_rows_cannot_be_counted_on_sqlite_and_it_says_so() -> None:
    with pytest.raises(QueryBudgetUnmeasurable) as exc, query_budget(max_rows=100):
        list(Review.objects.all())
    assert "the sqlite driver reports rowcount -1 for statement #1" in str(exc.value)
    with query_budget(max_rows=0):  # statements that return no rows are not held to max_rows
        Author.objects.filter(name="nobody").update(bio="x")


def test_decorator_gives_each_call_its_own_budget() -> None:
    @query_budget(max_queries=1)
    def one_query() -> int:
        return Book.objects.count()

    @query_budget(max_queries=1)
    def two_queries() -> int:
        return Book.objects.count() + Author.objects.count()

    assert one_query() == 3 and one_query() == 3
    with pytest.raises(QueryBudgetExceeded, match="2 queries, max_queries=1"):
        two_queries()


def test_the_hook_is_removed_even_when_the_block_raises() -> None:
    with pytest.raises(ZeroDivisionError), query_budget(max_queries=0):
        Book.objects.count()
        _ = 1 / 0
    assert connection.execute_wrappers == []
    with query_budget(max_queries=0):
        pass


def test_nested_budgets_both_count() -> None:
    with query_budget(max_queries=3) as outer:
        Book.objects.count()
        with query_budget(max_queries=1) as inner:
            Author.objects.count()
    assert (len(outer.executed), len(inner.executed)) == (2, 1)


def test_the_async_orm_called_from_the_test_thread_is_counted() -> None:
    async def view() -> int:
        return await Book.objects.acount() + await Author.objects.acount()

    with pytest.raises(QueryBudgetExceeded, match="2 queries, max_queries=1"), query_budget(max_queries=1):
        async_to_sync(view)()


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_limits_are_refused(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"query_budget: max_rows must be a whole number of 0 or more"):
        query_budget(max_rows=bad)


def test_the_toolkit_imports_without_django() -> None:
    code = "import sys; sys.modules['django'] = None; import toolkit.django, toolkit.cli.app; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT)
    assert (done.returncode, done.stdout) == (0, "ok\n"), done.stderr


PLUGIN_CONFTEST = """
pytest_plugins = ["toolkit.django.pytest_plugin"]
"""
PLUGIN_TESTS = """
import django
from django.conf import settings

settings.configure(DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})
django.setup()

from django.db import connection


def _two():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.execute("SELECT 2")


def test_within(query_budget):
    with query_budget(max_queries=2):
        _two()


def test_over(query_budget):
    with query_budget(max_queries=1):
        _two()
"""


def test_the_pytest_plugin_gives_the_fixture(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(textwrap.dedent(PLUGIN_CONFTEST))
    (tmp_path / "test_app.py").write_text(textwrap.dedent(PLUGIN_TESTS))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "."],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 failed, 1 passed" in done.stdout
    assert "QueryBudgetExceeded: query budget exceeded: 2 queries, max_queries=1" in done.stdout

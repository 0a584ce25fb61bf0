"""pytest plugin: the ``query_budget`` fixture, for an app's own tests.

Enable it in the app's top-level conftest.py::

    pytest_plugins = ["toolkit.django.pytest_plugin"]

then::

    def test_order_list(client, query_budget):
        with query_budget(max_queries=3, max_joins=1, max_rows=50):
            client.get("/orders/")
"""

from __future__ import annotations

import pytest

from toolkit.django.budget import query_budget as _query_budget


@pytest.fixture
def query_budget() -> type[_query_budget]:
    """The ``query_budget`` factory (a context manager and a decorator); see toolkit.django.budget."""
    return _query_budget

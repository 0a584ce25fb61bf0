"""Query budgets for a Django app's own tests: ``query_budget`` and the pytest fixture.

Django is imported only when a budget is entered: importing the toolkit never needs Django.

    from toolkit.django import query_budget

    def test_order_list(client):
        with query_budget(max_queries=3, max_joins=1, max_columns=12, max_rows=50):
            client.get("/orders/")
"""

from __future__ import annotations

from toolkit.django.budget import Executed, QueryBudgetExceeded, QueryBudgetUnmeasurable, query_budget

__all__ = ["Executed", "QueryBudgetExceeded", "QueryBudgetUnmeasurable", "query_budget"]

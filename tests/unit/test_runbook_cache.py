"""cache-flush-namespace's pure planner: the namespace ends with the separator, a prefix that another
namespace begins with is refused (exit 2), a prefix outside the app's is refused (exit 64)."""

from __future__ import annotations

import pytest

from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.runbooks.cache import check_inside, check_prefix, namespace, plan_flush_namespace


def test_the_namespace_always_ends_with_the_separator() -> None:
    assert namespace("lab:c") == "lab:c:"
    assert namespace("lab:c:") == "lab:c:"


def test_a_prefix_that_another_namespace_begins_with_is_refused_with_the_count() -> None:
    # 'lab:c' names 'lab:c:' (3 keys), but 'lab:celery-task-meta-*' (2 keys) begins with it too.
    with pytest.raises(RefusedError, match=r"also matches 2 key\(s\) outside the namespace 'lab:c:'"):
        plan_flush_namespace("redis@x", "lab:c", in_namespace=3, beginning_with=5)


def test_without_the_separator_only_the_namespace_is_planned() -> None:
    (action,) = plan_flush_namespace("redis@x", "lab:c", in_namespace=3, beginning_with=3).actions
    assert action.args["prefix"] == "lab:c:"
    assert action.args["keys"] == 3


def test_with_the_separator_the_namespace_is_the_prefix() -> None:
    (action,) = plan_flush_namespace("redis@x", "lab:c:", in_namespace=3, beginning_with=3).actions
    assert action.args["prefix"] == "lab:c:"


def test_nothing_under_the_namespace_plans_nothing() -> None:
    assert plan_flush_namespace("redis@x", "lab:c:", 0, 0).actions == ()


@pytest.mark.parametrize("prefix", ["celery", "c", "la", "other:lab:", "LAB:"])
def test_a_prefix_outside_the_apps_key_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(RunbookUsageError, match="outside the app's key prefix 'lab:'"):
        check_inside(prefix, "lab:")


def test_the_app_prefix_itself_and_below_are_inside() -> None:
    assert check_inside("lab:", "lab:") == "lab:"
    assert check_inside("lab:3:", "lab:") == "lab:3:"
    assert check_inside("lab", "lab:") == "lab"  # names the namespace "lab:"
    assert check_inside("anything", "") == "anything"  # no app prefix in the inventory


@pytest.mark.parametrize("prefix", ["*", "", " ", "lab:*", "lab:[a]", "lab:?", "lab:\\"])
def test_glob_and_empty_prefixes_are_refused(prefix: str) -> None:
    with pytest.raises(RunbookUsageError, match="would match every key"):
        check_prefix(prefix)

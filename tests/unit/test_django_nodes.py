"""Reading the app nodes' settings sources from the inventory: errors never echo a value."""

from __future__ import annotations

import pytest

from toolkit.domain.django_nodes import django_sources
from toolkit.domain.errors import InventoryError

SECRET = "postgres://app:hunter2-never-printed@db1/app"


@pytest.mark.parametrize(
    ("extra", "variable"),
    [
        ({"django_settings_env": [SECRET]}, "django_settings_env"),
        ({"django_settings_env": {"DATABASE_URL": [SECRET]}}, "django_settings_env"),
        ({"django_settings_env": {"DATABASE_URL": {"url": SECRET}}}, "django_settings_env"),
        ({"django_python": [SECRET]}, "django_python"),
    ],
)
def test_errors_name_the_variable_and_never_print_the_value(extra: dict[str, object], variable: str) -> None:
    hostvars = {"a": {"django_settings_module": "demo.settings", "django_pythonpath": "/srv/app", **extra}}
    with pytest.raises(InventoryError) as caught:
        django_sources(["a"], hostvars)
    message = str(caught.value)
    assert caught.value.variable == variable
    assert "(host a)" in message
    assert "hunter2" not in message


def test_an_empty_string_is_named_as_such() -> None:
    with pytest.raises(InventoryError, match="got an empty string"):
        django_sources(["a"], {"a": {"django_settings_module": "demo.settings", "django_pythonpath": " "}})

"""Markers by place: every test under tests/integration needs the deployed lab, under tests/fleet the lab's
hosts themselves, under tests/packaging the package index. A bare `pytest` deselects all three
(pyproject's addopts); `make test` runs each as its own stage with `-m`."""

from __future__ import annotations

from pathlib import Path

import pytest

_BY_DIRECTORY = {"integration": "integration", "fleet": "fleet", "packaging": "packaging"}
_TESTS = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Give each test the marker of the directory it lives in."""
    for item in items:
        try:
            relative = item.path.resolve().relative_to(_TESTS)
        except ValueError:
            continue
        marker = _BY_DIRECTORY.get(relative.parts[0]) if len(relative.parts) > 1 else None
        if marker:
            item.add_marker(getattr(pytest.mark, marker))

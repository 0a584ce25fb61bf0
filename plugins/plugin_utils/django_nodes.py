# Generated from toolkit/domain/django_nodes.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/django_nodes.py and run `python scripts/generate_plugin_utils.py`.
"""Where each app node's Django settings can be read: the ``django_settings_*`` host variables.

An app node that sets ``django_settings_module`` is read by doctor with the node's own interpreter,
PYTHONPATH and environment, so the settings of every node can be compared with each other (the
cache configuration above all: nodes that disagree do not share their cache). The variables are
optional; a node without them is simply not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import InventoryError

SETTINGS_KEYS = (
    "django_settings_module",
    "django_pythonpath",
    "django_python",
    "django_settings_env",
    "django_settings_user",
)


@dataclass(frozen=True)
class DjangoSource:
    """How to import one node's settings: module, PYTHONPATH, interpreter and extra environment."""

    node: str
    settings_module: str
    pythonpath: str
    python: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    user: str | None = None  # who imports them on the node over SSH (sudo -n -u); None: the SSH user


def _text(node: str, key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        got = "an empty string" if isinstance(value, str) else type(value).__name__
        raise InventoryError(key, node, f"must be a non-empty string, got {got}")
    return value.strip()


def _env(node: str, value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        # Values are never echoed: settings environments carry DSNs and keys.
        raise InventoryError(
            "django_settings_env", node, f"must be a mapping of names to strings, got {type(value).__name__}"
        )
    out: list[tuple[str, str]] = []
    for name, setting in value.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InventoryError("django_settings_env", node, f"{name!r} is not an environment variable name")
        if not isinstance(setting, str | int | float) or isinstance(setting, bool):
            raise InventoryError(
                "django_settings_env", node, f"{name}: must be a string, got {type(setting).__name__}"
            )
        out.append((name, str(setting)))
    return tuple(sorted(out))


def django_sources(nodes: list[str], hostvars: Mapping[str, Mapping[str, Any]]) -> tuple[DjangoSource, ...]:
    """The app nodes whose settings the inventory says how to read, in inventory order.

    >>> hv = {"a": {"django_settings_module": "demo.settings", "django_pythonpath": "/srv/app",
    ...             "django_settings_env": {"NODE": "a"}}, "b": {}}
    >>> [(s.node, s.settings_module, s.env) for s in django_sources(["a", "b"], hv)]
    [('a', 'demo.settings', (('NODE', 'a'),))]
    >>> django_sources(["a"], {"a": {"django_settings_module": "demo.settings"}})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.InventoryError: inventory: django_pythonpath (host a): must be a non-empty ...
    """
    out: list[DjangoSource] = []
    for node in nodes:
        hv = hostvars.get(node, {})
        if hv.get("django_settings_module") is None:
            continue
        python = hv.get("django_python")
        user = hv.get("django_settings_user")
        out.append(
            DjangoSource(
                node=node,
                settings_module=_text(node, "django_settings_module", hv.get("django_settings_module")),
                pythonpath=_text(node, "django_pythonpath", hv.get("django_pythonpath")),
                python=None if python is None else _text(node, "django_python", python),
                env=_env(node, hv.get("django_settings_env")),
                user=None if user is None else _text(node, "django_settings_user", user),
            )
        )
    return tuple(out)

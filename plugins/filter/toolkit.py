"""Ansible filters: a thin shim over toolkit.domain, the one place pools are sized.

The domain code comes from the collection's plugin_utils, a generated copy of toolkit/domain/
(scripts/generate_plugin_utils.py), so the roles need only ansible-core on the controller, not the
toolkit package. Use them by their full names: ``groups | pgbouncer_django.toolkit.toolkit_pool_plan(hv)``.

Ansible passes plain values in; nothing here reads hostvars or the Jinja context. Domain errors
become AnsibleFilterError, so a play fails at the first task with the domain's one-line message.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import ToolkitError
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.inventory import (
    INVENTORY_KEYS,
    topology_from_inventory,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.known_variables import (
    PREFIX_PATTERN,
    check_known_names,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.pgbouncer_rows import (
    clients,
    config_rows,
    databases,
    from_csv,
    pools,
    servers,
    stats,
    to_dict,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.redis_config import config_get
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.role_inputs import (
    ROLE_VARIABLES,
    check_host_inputs,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.scram import scram_sha256_verifier
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.sizing import plan


def toolkit_pool_plan(
    groups: Mapping[str, Sequence[str]], hostvars: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Return the plan (plain data) for the topology that groups and per-host variables describe."""
    try:
        # Role inputs are checked by toolkit_check_inputs (check play, roles' assert.yml) on the
        # rendered values; these hostvars hold user names only, so they are not checked again here.
        return plan(topology_from_inventory(groups, hostvars, check_inputs=False)).to_dict()
    except ToolkitError as exc:
        raise AnsibleFilterError(f"toolkit sizing: {exc}") from None


def toolkit_scram_verifier(password: str, username: str, seed: str) -> str:
    """Return the deterministic SCRAM-SHA-256 verifier of username/password under seed."""
    try:
        return scram_sha256_verifier(str(password), str(username), str(seed))
    except ValueError as exc:
        raise AnsibleFilterError(f"toolkit scram: {exc}") from None


def toolkit_check_inputs(values: Mapping[str, Any], host: str) -> bool:
    """Return True when every role input in ``values`` (one host's, rendered) passes its rule.

    Otherwise fail with the domain's one-line message naming the variable, the host and what is
    allowed; a secret's value is never in it.
    """
    try:
        check_host_inputs(str(host), dict(values))
    except ToolkitError as exc:
        raise AnsibleFilterError(f"toolkit inputs: {exc}") from None
    return True


def toolkit_check_known(names: Sequence[str], host: str, extra: Any = None) -> bool:
    """Return True when every name under a toolkit prefix is a known variable or listed in ``extra``.

    Otherwise fail naming the variable, the host and the closest known one. Names only: no value
    but ``toolkit_extra_variables`` (``extra``) is ever passed in.
    """
    try:
        check_known_names(str(host), [str(n) for n in names], extra)
    except ToolkitError as exc:
        raise AnsibleFilterError(f"toolkit inputs: {exc}") from None
    return True


def toolkit_prefix_pattern(_: Any = None) -> str:
    """Return the regular expression of the toolkit's variable prefixes (for ``varnames``)."""
    return PREFIX_PATTERN


def toolkit_role_inputs(role: str | None = None) -> list[str]:
    """Return the input names of ``role`` (pgbouncer, redis, postgresql_lab, django_demo, plan), or all."""
    if role is None:
        return [name for names in ROLE_VARIABLES.values() for name in names]
    if role not in ROLE_VARIABLES:
        raise AnsibleFilterError(f"toolkit inputs: unknown role {role!r}; known: {', '.join(ROLE_VARIABLES)}")
    return list(ROLE_VARIABLES[role])


def toolkit_inventory_keys(_: Any = None) -> list[str]:
    """Return the inventory variable names the sizing reads."""
    return list(INVENTORY_KEYS)


# SHOW commands whose psql output the roles read, and their parsers (toolkit.domain.pgbouncer_rows).
_SHOW = {
    "CONFIG": config_rows,
    "DATABASES": databases,
    "POOLS": pools,
    "STATS": stats,
    "CLIENTS": clients,
    "SERVERS": servers,
}


def toolkit_pgbouncer_show(csv_text: str, command: str) -> list[dict[str, Any]]:
    """Return the rows of ``SHOW <command>`` from psql's ``--csv`` output, as typed dicts.

    Columns are read by name (a renamed column under either name), values typed as the toolkit's
    rows type them: ``{"name": "app", "pool_size": 20, "paused": False, ...}``.
    """
    command = str(command).upper()
    parse = _SHOW.get(command)
    if parse is None:
        raise AnsibleFilterError(f"toolkit show: no parser for SHOW {command}; known: {', '.join(_SHOW)}")
    try:
        return [to_dict(row) for row in parse(*from_csv(str(csv_text)))]
    except ValueError as exc:
        raise AnsibleFilterError(f"toolkit show: SHOW {command}: {exc}") from None


def toolkit_pgbouncer_config(csv_text: str) -> dict[str, str]:
    """Return SHOW CONFIG from psql's ``--csv`` output as ``{key: value}``, values as printed."""
    return {row["key"]: row["value"] for row in toolkit_pgbouncer_show(csv_text, "CONFIG")}


def toolkit_redis_config(text: str) -> dict[str, str]:
    """Return redis-cli's CONFIG GET output (name and value on alternate lines) as ``{name: value}``."""
    try:
        return config_get(str(text))
    except ValueError as exc:
        raise AnsibleFilterError(f"toolkit redis: {exc}") from None


class FilterModule:
    """Filters over toolkit.domain."""

    def filters(self) -> dict[str, Any]:
        return {
            "toolkit_pool_plan": toolkit_pool_plan,
            "toolkit_scram_verifier": toolkit_scram_verifier,
            "toolkit_inventory_keys": toolkit_inventory_keys,
            "toolkit_check_inputs": toolkit_check_inputs,
            "toolkit_check_known": toolkit_check_known,
            "toolkit_prefix_pattern": toolkit_prefix_pattern,
            "toolkit_role_inputs": toolkit_role_inputs,
            "toolkit_pgbouncer_show": toolkit_pgbouncer_show,
            "toolkit_pgbouncer_config": toolkit_pgbouncer_config,
            "toolkit_redis_config": toolkit_redis_config,
        }

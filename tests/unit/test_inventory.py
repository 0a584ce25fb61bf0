"""Inventory parsing: every bad value is named with its variable and host."""

from __future__ import annotations

from typing import Any

import pytest

from toolkit.adapters.inventory import parse_list_output
from toolkit.domain.errors import InventoryError
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.models import PoolMode, ServerKind

BASE: dict[str, Any] = {
    "database_max_connections": 100,
    "database_cores": 2,
    "pgbouncer_databases": [{"name": "app"}],
    "pgbouncer_auth_users": [{"name": "app", "password": "{{ vault_pw }}"}],
}


def _parse(pgb: dict[str, Any] | None = None, app: dict[str, Any] | None = None, **groups: Any) -> Any:
    hostvars = {"pgb": {**BASE, **(pgb or {})}, "app": app or {}}
    return topology_from_inventory({"pgbouncer": ["pgb"], "django": ["app"], **groups}, hostvars)


def test_defaults_and_passwords_are_never_read() -> None:
    topo = _parse()
    assert topo.database.max_connections == 100
    assert topo.pgbouncers[0].pool_mode is PoolMode.TRANSACTION
    assert topo.pgbouncers[0].users == ("app",)
    assert topo.app_nodes[0].server is ServerKind.WSGI_SYNC
    assert topo.app_nodes[0].pgbouncer_hosts == ("pgb",)


@pytest.mark.parametrize(
    ("pgb", "app", "message"),
    [
        ({"database_max_connections": None}, {}, "database_max_connections (host pgb): is required"),
        ({"database_max_connections": "many"}, {}, "database_max_connections (host pgb): must be an integer"),
        ({"database_max_connections": 0}, {}, "must be at least 1, got 0"),
        ({"database_cores": True}, {}, "database_cores (host pgb): must be an integer from 1 to 2147483647"),
        (
            {"database_hold_factor": -1},
            {},
            "database_hold_factor (host pgb): must be in (0.0, 1000.0], got -1",
        ),
        ({"database_cpu_share": 1.5}, {}, "database_cpu_share (host pgb): must be in (0.0, 1.0], got 1.5"),
        ({"database_cpu_share": 0}, {}, "database_cpu_share (host pgb): must be in (0.0, 1.0], got 0"),
        ({"pgbouncer_pool_mode": "batch"}, {}, "must be one of session, transaction, statement, got 'batch'"),
        ({"pgbouncer_databases": []}, {}, "pgbouncer_databases (host pgb): must be a non-empty list"),
        (
            {"pgbouncer_databases": [{"dbname": "x"}]},
            {},
            "pgbouncer_databases (host pgb): entry 1 needs name",
        ),
        ({"pgbouncer_auth_users": [{"name": "a"}, {"name": "a"}]}, {}, "entry 2 repeats the name 'a'"),
        ({"database_bypass_connections": {"cron": -1}}, {}, "'cron' must be at least 0, got -1"),
        ({"database_max_connections": "{{ x }}"}, {}, "must be a literal value, not a template"),
        ({}, {"django_server": "fastcgi"}, "django_server (host app): must be one of wsgi_sync"),
        ({}, {"django_threads": 0}, "django_threads (host app): must be at least 1"),
        ({}, {"django_pgbouncer_hosts": ["elsewhere"]}, "'elsewhere' is not in the 'pgbouncer' group"),
    ],
)
def test_bad_values_name_variable_host_and_why(
    pgb: dict[str, Any], app: dict[str, Any], message: str
) -> None:
    with pytest.raises(InventoryError) as err:
        _parse(pgb, app)
    assert message in str(err.value)


def test_tier_values_must_agree() -> None:
    hostvars = {"a": BASE, "b": {**BASE, "database_max_connections": 200}}
    with pytest.raises(InventoryError, match=r"database_max_connections \(host b\): differs from host 'a'"):
        topology_from_inventory({"pgbouncer": ["a", "b"]}, hostvars)


def test_no_pgbouncer_group_is_an_inventory_error() -> None:
    with pytest.raises(InventoryError, match="'pgbouncer' group has no hosts"):
        topology_from_inventory({"django": ["x"]}, {})


def test_broker_must_not_evict() -> None:
    hostvars = {"pgb": BASE, "r": {"redis_profile": "broker", "redis_maxmemory_policy": "allkeys-lru"}}
    with pytest.raises(InventoryError, match="a broker must not evict"):
        topology_from_inventory({"pgbouncer": ["pgb"], "redis": ["r"]}, hostvars)


def test_list_output_groups_are_flattened() -> None:
    data = {
        "_meta": {"hostvars": {"a": {"x": 1}, "b": {}}},
        "all": {"children": ["ungrouped", "web"]},
        "web": {"children": ["django"], "hosts": ["b"]},
        "django": {"hosts": ["a"]},
        "ungrouped": {},
    }
    inv = parse_list_output("x", data)
    assert inv.groups["web"] == ("b", "a")
    assert inv.groups["all"] == ("b", "a")
    assert inv.hostvars["a"] == {"x": 1}

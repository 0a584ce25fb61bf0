"""Misspelled inventory variables (issue 11 §4): a name under a toolkit prefix that nothing knows is an error.

``django_worker: 8`` instead of ``django_workers`` used to leave the node at one worker with exit 0.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.domain.django_nodes import SETTINGS_KEYS
from toolkit.domain.errors import InventoryError
from toolkit.domain.inventory import INVENTORY_KEYS, topology_from_inventory
from toolkit.domain.known_variables import (
    KNOWN_VARIABLES,
    check_known_names,
    check_known_variables,
    unknown_variables,
)
from toolkit.domain.role_inputs import ROLE_INPUTS
from toolkit.domain.targets import TARGET_DEFAULTS
from toolkit.domain.versions import ACK_VARIABLE

ROOT = Path(__file__).resolve().parents[2]

# misspelled -> the suggestion the message must carry (None: no known name is close).
MISSPELLINGS = [
    ("django_worker", "django_workers"),
    ("django_thread", "django_threads"),
    ("django_celery_concurency", "django_celery_concurrency"),
    ("django_pgbouncer_host", "django_pgbouncer_hosts"),
    ("django_settings_modul", "django_settings_module"),
    ("database_max_connection", "database_max_connections"),
    ("database_core", "database_cores"),
    ("database_holdfactor", "database_hold_factor"),
    ("pgbouncer_pool_mod", "pgbouncer_pool_mode"),
    ("pgbouncer_listen_address", "pgbouncer_listen_addr"),
    ("pgbouncer_admin_user", "pgbouncer_admin_users"),
    ("pgbouncer_defualt_pool_size", "pgbouncer_default_pool_size"),
    ("redis_max_memory_mb", "redis_maxmemory_mb"),
    ("redis_maxmemory_polcy", "redis_maxmemory_policy"),
    ("toolkit_acknowledged_cve", "toolkit_acknowledged_cves"),
    ("toolkit_redis_prefix", "toolkit_redis_key_prefix"),
    ("postgresql_lab_user", "postgresql_lab_users"),
    ("django_demo_secret", "django_demo_secret_key"),
    ("redis_qqqqqqqqqqqqqqqqqqq", None),
]


@pytest.mark.parametrize(("name", "closest"), MISSPELLINGS)
def test_a_misspelled_variable_is_an_error_naming_the_closest_known_one(
    name: str, closest: str | None
) -> None:
    with pytest.raises(InventoryError) as err:
        check_known_variables("app-1", {name: 8, "django_workers": 2})
    message = str(err.value)
    assert message.startswith(f"inventory: {name} (host app-1): is not a variable of the toolkit; ")
    if closest:
        assert f"did you mean {closest}? " in message
    else:
        assert "did you mean" not in message
    assert "toolkit_extra_variables" in message
    assert "\n" not in message


def test_the_value_is_never_in_the_message() -> None:
    with pytest.raises(InventoryError) as err:
        check_known_variables("db", {"redis_app_pasword": "hunter2"})
    assert "did you mean redis_app_password?" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_every_unknown_name_of_a_host_is_named_in_one_line() -> None:
    with pytest.raises(InventoryError) as err:
        check_known_variables("app-1", {"django_worker": 8, "django_thread": 2, "redis_bogus": 1})
    assert err.value.variable == "django_thread"
    assert "did you mean django_threads? " in str(err.value)
    assert str(err.value).endswith("(also unknown: django_worker, redis_bogus)")


@pytest.mark.parametrize(
    "name",
    [
        "ansible_host",
        "ansible_user",
        "ansible_become",
        "inventory_hostname",
        "groups",
        "group_names",
        "vault_app_password",
        "lab_secrets_dir",
        "__pgbouncer_plan",
        "__toolkit_defaults_redis",
        "djangoworkers",
        "my_django_workers",
        "postgresql_version",
    ],
)
def test_names_without_a_toolkit_prefix_are_never_checked(name: str) -> None:
    check_known_variables("h", {name: 1})


def test_toolkit_extra_variables_keeps_a_users_own_names_by_name_or_glob() -> None:
    values = {
        "toolkit_extra_variables": ["django_my_flag", "pgbouncer_local_*", "redis_team_[ab]"],
        "django_my_flag": True,
        "pgbouncer_local_note": "x",
        "pgbouncer_local_other": 1,
        "redis_team_a": 1,
    }
    check_known_variables("h", values)
    with pytest.raises(InventoryError, match=r"^inventory: redis_team_c \(host h\)"):
        check_known_variables("h", {**values, "redis_team_c": 1})
    # A listed pattern only keeps what it matches: a misspelling of a real variable is still caught.
    with pytest.raises(InventoryError, match="did you mean django_workers"):
        check_known_variables("h", {**values, "django_worker": 8})


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ("django_*", "must be a list of names or glob patterns, got str"),
        ({"django_x": 1}, "must be a list of names or glob patterns, got dict"),
        ([1], "entry 1 must be a name or a glob pattern"),
        (["django x"], "entry 1 must be a name or a glob pattern"),
        (["ok", "bad\nline"], "entry 2 must be a name or a glob pattern"),
        (["django_*"], "the pattern 'django_*' also matches the toolkit's django_celery_concurrency, so it"),
        (["*"], "the pattern '*' also matches the toolkit's database_bypass_connections"),
        (["django_worker*"], "the pattern 'django_worker*' also matches the toolkit's django_workers"),
        (["redis_?????_user"], "the pattern 'redis_?????_user' also matches the toolkit's redis_admin_user"),
    ],
)
def test_a_malformed_toolkit_extra_variables_is_an_error(extra: Any, why: str) -> None:
    with pytest.raises(InventoryError) as err:
        check_known_variables("h", {"toolkit_extra_variables": extra})
    assert str(err.value).startswith(f"inventory: toolkit_extra_variables (host h): {why}")
    assert "\n" not in str(err.value)


def test_listing_a_known_name_is_harmless() -> None:
    check_known_variables("h", {"toolkit_extra_variables": ["django_workers"], "django_workers": 2})


def test_names_only_is_the_same_check_the_play_runs() -> None:
    check_known_names("h", ["django_workers", "ansible_host"], None)
    with pytest.raises(InventoryError, match="did you mean django_workers"):
        check_known_names("h", ["django_worker"], None)
    check_known_names("h", ["django_mine"], ["django_mine"])


def test_the_inventory_load_refuses_a_misspelling_before_sizing() -> None:
    groups = {"pgbouncer": ["pgb1"], "django": ["web1"]}
    base = {"database_max_connections": 100, "database_cores": 2, "pgbouncer_databases": [{"name": "app"}]}
    hostvars: dict[str, dict[str, Any]] = {
        "pgb1": {**base, "pgbouncer_auth_users": [{"name": "app"}]},
        "web1": {"django_server": "wsgi_sync", "django_worker": 8},
    }
    with pytest.raises(
        InventoryError, match=r"^inventory: django_worker \(host web1\): .*did you mean django_workers\?"
    ):
        topology_from_inventory(groups, hostvars)
    hostvars["web1"]["toolkit_extra_variables"] = ["django_worker"]
    assert topology_from_inventory(groups, hostvars).app_nodes[0].workers == 1


# The known set comes from one place; everything that reads a variable must be in it.
def _role_variables() -> list[tuple[str, str]]:
    found = []
    for path in sorted(ROOT.glob("roles/*/defaults/main.yml")):
        data = yaml.safe_load(path.read_text()) or {}
        found += [(str(path.relative_to(ROOT)), name) for name in data]
    for path in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        specs = (yaml.safe_load(path.read_text()) or {}).get("argument_specs") or {}
        for entry in specs.values():
            found += [(str(path.relative_to(ROOT)), name) for name in (entry or {}).get("options") or {}]
    return found


def test_the_drift_test_reads_every_role() -> None:
    files = {path for path, _ in _role_variables()}
    assert {"roles/pgbouncer/defaults/main.yml", "roles/redis/meta/argument_specs.yml"} <= files
    assert len(_role_variables()) > 100


@pytest.mark.parametrize(("path", "name"), _role_variables())
def test_every_role_default_and_argument_spec_is_known(path: str, name: str) -> None:
    assert unknown_variables("h", [name]) == [], f"{path}: {name} is not in KNOWN_VARIABLES"


def test_everything_the_sizing_doctor_and_runbooks_read_is_known() -> None:
    read = {*ROLE_INPUTS, *INVENTORY_KEYS, *TARGET_DEFAULTS, *SETTINGS_KEYS, ACK_VARIABLE}
    read |= {"toolkit_pgbouncer_address", "toolkit_redis_address", "toolkit_pgbouncer_admin_user"}
    assert read <= KNOWN_VARIABLES


# A host variable read in toolkit/: v.text("toolkit_x", ...), hv.get("django_settings_env"), ...
_READ = re.compile(
    r'(?:\.(?:get|text|integer|optional_integer|names|counts)\(\s*|_address\(v, "[a-z_]+", )'
    r'"(toolkit_[a-z_]+|django_(?:settings|python)[a-z_]*)"'
)


def _toolkit_reads() -> set[str]:
    """Every toolkit_* and django_settings*/django_python* name toolkit/ reads from a host's variables."""
    return {name for path in (ROOT / "toolkit").rglob("*.py") for name in _READ.findall(path.read_text())}


def test_every_host_variable_the_cli_reads_is_known() -> None:
    reads = _toolkit_reads()
    assert "toolkit_pgbouncer_admin_user" in reads
    assert reads <= KNOWN_VARIABLES, sorted(reads - KNOWN_VARIABLES)

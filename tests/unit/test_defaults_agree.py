"""One source of defaults: the domain's (toolkit.domain.inventory.DEFAULTS, targets.TARGET_DEFAULTS).

The roles repeat some of them so that each role's interface is whole (defaults/main.yml,
meta/argument_specs.yml, the ``| default(...)`` of vars/main.yml). Each repetition must equal the
source, or a deploy would render one value while the plan and doctor assume another (the role's
pgbouncer_listen_port feeds the template; the CLI reads the Python default). The list of the settings
the plan sizes is kept once too (toolkit.domain.plan.PGBOUNCER_SIZED_SETTINGS); the role's list and the
pages that name them are held to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.domain.inventory import DEFAULTS, topology_from_inventory
from toolkit.domain.plan import PGBOUNCER_SIZED_SETTINGS
from toolkit.domain.targets import TARGET_DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p for p in (ROOT / "roles").iterdir() if (p / "meta" / "argument_specs.yml").is_file())
SOURCE: dict[str, Any] = {**DEFAULTS, **TARGET_DEFAULTS}


def _yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def _role_defaults(role: Path) -> dict[str, Any]:
    return _yaml(role / "defaults" / "main.yml")


def _spec_options(role: Path) -> dict[str, dict[str, Any]]:
    specs = _yaml(role / "meta" / "argument_specs.yml").get("argument_specs", {})
    return {name: opt for entry in specs.values() for name, opt in (entry.get("options") or {}).items()}


def test_the_domain_defaults_are_what_the_reader_applies() -> None:
    """The source is what an inventory that sets none of the variables gets."""
    groups = {"pgbouncer": ["p"], "django": ["a"], "redis": ["r"]}
    hostvars = {
        "p": {"database_max_connections": 100, "database_cores": 2, "pgbouncer_databases": [{"name": "app"}],
              "pgbouncer_auth_users": [{"name": "app"}]},
        "a": {},
        "r": {"redis_maxmemory_mb": 64},
    }  # fmt: skip
    t = topology_from_inventory(groups, hostvars)
    got = {
        "database_host": t.database.host,
        "database_port": t.database.port,
        "pgbouncer_listen_port": t.pgbouncers[0].listen_port,
        "pgbouncer_listen_addr": t.pgbouncers[0].listen_addr,
        "pgbouncer_pool_mode": t.pgbouncers[0].pool_mode.value,
        "pgbouncer_processes": t.pgbouncers[0].processes,
        "django_server": t.app_nodes[0].server.value,
        "redis_memory_share": t.redis[0].memory_share,
        "redis_ops_slots": t.redis[0].ops_slots,
    }
    assert got == {k: DEFAULTS[k] for k in got}


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_a_role_default_the_domain_also_defines_is_equal(role: Path) -> None:
    shared = {k: v for k, v in _role_defaults(role).items() if k in SOURCE}
    assert shared == {k: SOURCE[k] for k in shared}, f"roles/{role.name}/defaults/main.yml"


def test_the_pgbouncer_and_redis_roles_repeat_the_domains_listen_defaults() -> None:
    """The check above must have something to compare (and the listen port is the reported case)."""
    assert (
        _role_defaults(ROOT / "roles" / "pgbouncer")["pgbouncer_listen_port"]
        == DEFAULTS["pgbouncer_listen_port"]
    )
    assert _role_defaults(ROOT / "roles" / "redis")["redis_listen_port"] == DEFAULTS["redis_listen_port"]


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_an_argument_spec_default_equals_the_roles_default(role: Path) -> None:
    defaults = _role_defaults(role)
    wrong = {}
    for name, option in _spec_options(role).items():
        if "default" not in option:
            continue
        expected = defaults[name] if name in defaults else SOURCE.get(name, option["default"])
        if option["default"] != expected:
            wrong[name] = (option["default"], expected)
    assert not wrong, (
        f"roles/{role.name}/meta/argument_specs.yml default -> (spec, defaults/main.yml): {wrong}"
    )


_JINJA_DEFAULT = re.compile(r"\b([a-z][a-z0-9_]*)\s*\|\s*default\(\s*([^),]+?)\s*[,)]")


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_a_jinja_default_of_a_domain_variable_is_the_domains(role: Path) -> None:
    required = {name for name, option in _spec_options(role).items() if option.get("required")}
    found = {}
    for path in sorted(role.rglob("*.yml")) + sorted(role.rglob("*.j2")):
        for name, literal in _JINJA_DEFAULT.findall(path.read_text(encoding="utf-8")):
            # A variable the role requires has no default there: its default('') only makes the assert fail.
            if name in SOURCE and name not in required and literal.strip("'\"") != "unset":
                found[f"{path.relative_to(ROOT)}: {name}"] = (yaml.safe_load(literal), SOURCE[name])
    assert {k: v for k, v in found.items() if v[0] != v[1]} == {}


def test_the_roles_sized_settings_are_the_plans() -> None:
    role_vars = _yaml(ROOT / "roles" / "pgbouncer" / "vars" / "main.yml")
    assert tuple(role_vars["__pgbouncer_sized_settings"]) == PGBOUNCER_SIZED_SETTINGS


@pytest.mark.parametrize(
    "page",
    [
        "roles/pgbouncer/defaults/main.yml",
        "roles/pgbouncer/meta/argument_specs.yml",
        "docs/roles/pgbouncer.md",
    ],
)
def test_a_page_that_lists_the_sized_settings_lists_exactly_the_plans(page: str) -> None:
    text = " ".join((ROOT / page).read_text(encoding="utf-8").split())
    listed = re.search(r"default_pool_size`?,[^.(]*max_client_conn", text)
    assert listed, f"{page}: no list of the sized settings"
    names = tuple(re.findall(r"[a-z_]+", listed.group(0).replace("#", " ").replace("- ", " ")))
    assert names == PGBOUNCER_SIZED_SETTINGS, page

"""The filters the roles' verify tasks call on live output: psql's CSV of SHOW, redis-cli's CONFIG GET.

They are the collection's filters as Ansible loads them (through the collection link `make venv` makes),
fed with the lab's captured SHOW output written as psql --csv prints it.
"""

from __future__ import annotations

import csv
import importlib
import io
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures" / "pgbouncer"


@pytest.fixture(scope="module")
def filters() -> ModuleType:
    link = ROOT / ".collections"
    assert (link / "ansible_collections" / "pgbouncer_django" / "toolkit").exists(), "run make venv"
    sys.path.insert(0, str(link))
    try:
        return importlib.import_module("ansible_collections.pgbouncer_django.toolkit.plugins.filter.toolkit")
    finally:
        sys.path.remove(str(link))


def as_psql_csv(host: str, command: str) -> str:
    """The captured SHOW result as `psql --csv` prints it (NULL is an empty field)."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{host}.json").read_text())[command]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(data["columns"])
    writer.writerows(["" if v is None else v for v in row] for row in data["rows"])
    return out.getvalue()


def test_filters_are_registered_under_their_names(filters: ModuleType) -> None:
    names = filters.FilterModule().filters()
    for name in ("toolkit_pgbouncer_show", "toolkit_pgbouncer_config", "toolkit_redis_config"):
        assert names[name] is getattr(filters, name)


@pytest.mark.parametrize(("host", "size", "reserve"), [("pgb1", 20, 5), ("pgb2", 12, 3)])
def test_show_databases_gives_typed_rows_on_both_versions(
    filters: ModuleType, host: str, size: int, reserve: int
) -> None:
    rows = filters.toolkit_pgbouncer_show(as_psql_csv(host, "DATABASES"), "databases")
    app = next(r for r in rows if r["name"] == "app")
    assert (app["pool_size"], app["reserve_pool_size"], app["paused"]) == (size, reserve, False)
    assert {r["name"] for r in rows} == {"app", "pgbouncer"}


@pytest.mark.parametrize("host", ["pgb1", "pgb2"])
def test_show_config_gives_key_value(filters: ModuleType, host: str) -> None:
    config = filters.toolkit_pgbouncer_config(as_psql_csv(host, "CONFIG"))
    assert config["pool_mode"] == "transaction"
    assert config["listen_port"] == "6432"
    assert config["auth_query"].startswith("SELECT")  # a value with commas and quotes survives CSV


def test_a_wrong_command_or_output_fails_the_task_with_one_line(filters: ModuleType) -> None:
    with pytest.raises(AnsibleFilterError, match="no parser for SHOW FDS"):
        filters.toolkit_pgbouncer_show("a\n", "fds")
    with pytest.raises(AnsibleFilterError, match=r"SHOW DATABASES: .*lacks column\(s\) pool_size"):
        filters.toolkit_pgbouncer_show("name,paused,disabled\napp,0,0\n", "DATABASES")
    with pytest.raises(AnsibleFilterError, match="psql printed nothing"):
        filters.toolkit_pgbouncer_config("")


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (
            "maxmemory\n104857600\nmaxmemory-policy\nallkeys-lru",
            {"maxmemory": "104857600", "maxmemory-policy": "allkeys-lru"},
        ),
        ("maxmemory\n0\nsave", {"maxmemory": "0", "save": ""}),  # the empty last value lost its line
        ("save\n\nmaxclients\n100", {"save": "", "maxclients": "100"}),
        ("maxclients\n100\n", {"maxclients": "100"}),  # the output's own final newline
        ("", {}),
    ],
)
def test_redis_config_get(filters: ModuleType, stdout: str, expected: dict[str, str]) -> None:
    assert filters.toolkit_redis_config(stdout) == expected


def test_redis_error_output_is_not_read_as_settings(filters: ModuleType) -> None:
    with pytest.raises(AnsibleFilterError, match="did redis-cli fail"):
        filters.toolkit_redis_config("ERR unknown command")

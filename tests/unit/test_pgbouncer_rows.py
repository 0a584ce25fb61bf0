"""SHOW output of the lab's two PgBouncers (1.18 on pgb1, 1.24 on pgb2) parsed into typed rows.

The fixtures in tests/unit/fixtures/pgbouncer/ are the admin console's real answers, captured once
from the lab (column names and raw values as psycopg returned them, values as text).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from toolkit.domain import pgbouncer_rows as show

FIXTURES = Path(__file__).parent / "fixtures" / "pgbouncer"


def captured(host: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{host}.json").read_text())
    return data


def result(data: dict[str, Any], command: str) -> tuple[list[str], list[list[Any]]]:
    return data[command]["columns"], data[command]["rows"]


# What the lab's inventory plans for database app on each host (pool_size, reserve_pool_size).
PLANNED = {"pgb1": (20, 5), "pgb2": (12, 3)}


@pytest.fixture(params=["pgb1", "pgb2"])
def lab(request: pytest.FixtureRequest) -> tuple[dict[str, Any], show.Version]:
    data = captured(request.param)
    return data, show.version(data["VERSION"]["rows"])


def test_versions_of_the_captures() -> None:
    assert show.version(captured("pgb1")["VERSION"]["rows"]) == show.Version(1, 18, 0, "PgBouncer 1.18.0")
    assert show.version(captured("pgb2")["VERSION"]["rows"]) == show.Version(1, 24, 1, "PgBouncer 1.24.1")


def test_the_two_versions_really_differ_in_columns() -> None:
    old, new = captured("pgb1"), captured("pgb2")
    assert "reserve_pool" in old["DATABASES"]["columns"]
    assert "reserve_pool_size" in new["DATABASES"]["columns"]
    assert "load_balance_hosts" in set(new["POOLS"]["columns"]) - set(old["POOLS"]["columns"])


def test_databases_read_the_reserve_under_either_name(lab: tuple[dict[str, Any], show.Version]) -> None:
    data, version = lab
    rows = show.by_name(show.databases(*result(data, "DATABASES"), version))
    app = rows["app"]
    assert (app.pool_size, app.reserve_pool_size) == PLANNED["pgb1" if version.minor == 18 else "pgb2"]
    assert app.host == "198.18.0.10"
    assert (app.paused, app.disabled, app.port) == (False, False, 5432)
    assert rows["pgbouncer"].pool_mode == "statement"


def test_pools_config_stats_and_connections(lab: tuple[dict[str, Any], show.Version]) -> None:
    data, version = lab
    pools = show.pools(*result(data, "POOLS"), version)
    assert {p.database for p in pools} >= {"app", "pgbouncer"}
    assert all(p.cl_active >= 1 for p in pools if p.database == "pgbouncer")  # the capturing session
    config = show.config(*result(data, "CONFIG"), version)
    assert config["pool_mode"].value == "transaction"
    assert config["listen_port"].changeable is False and config["default_pool_size"].changeable is True
    assert config["default_pool_size"].default == "20"
    stats = {s.database: s for s in show.stats(*result(data, "STATS"), version)}
    assert stats["pgbouncer"].total_xact_count >= 1
    clients = show.clients(*result(data, "CLIENTS"), version)
    assert any(c.application_name == "toolkit" and c.database == "pgbouncer" for c in clients)
    assert all(isinstance(c.port, int) and isinstance(c.close_needed, bool) for c in clients)
    servers = show.servers(*result(data, "SERVERS"), version)
    assert all(s.type == "S" for s in servers)
    assert show.lists(*result(data, "LISTS"))["databases"] >= 2


def test_a_column_the_version_must_have_is_an_error_naming_it() -> None:
    data = captured("pgb1")
    names, rows = result(data, "DATABASES")
    with pytest.raises(
        ValueError, match=r"SHOW DATABASES of PgBouncer 1\.24\.1 lacks column\(s\) reserve_pool_size"
    ):
        show.databases(names, rows, show.Version.parse("PgBouncer 1.24.1"))
    names, rows = result(data, "POOLS")
    with pytest.raises(ValueError, match=r"lacks column\(s\) cl_waiting"):
        show.pools([n if n != "cl_waiting" else "cl_queued" for n in names], rows, show.Version(1, 18, 0))


def test_columns_are_found_by_name_not_position() -> None:
    names, rows = result(captured("pgb2"), "POOLS")
    order = list(reversed(range(len(names))))
    shuffled = show.pools(
        [names[i] for i in order], [[r[i] for i in order] for r in rows], show.Version(1, 24, 1)
    )
    assert shuffled == show.pools(names, rows, show.Version(1, 24, 1))


def test_without_a_version_a_renamed_column_is_taken_by_whichever_name_is_there() -> None:
    for host in ("pgb1", "pgb2"):
        (app,) = [r for r in show.databases(*result(captured(host), "DATABASES")) if r.name == "app"]
        assert app.reserve_pool_size == PLANNED[host][1]


def test_psql_csv_gives_the_same_rows_as_the_console() -> None:
    names, rows = result(captured("pgb2"), "DATABASES")
    text = (
        ",".join(names) + "\n" + "\n".join(",".join("" if v is None else v for v in r) for r in rows) + "\n"
    )
    header, parsed = show.from_csv(text)
    assert header == names
    assert [r.pool_size for r in show.databases(header, parsed)] == [
        r.pool_size for r in show.databases(names, rows, show.Version(1, 24, 1))
    ]
    with pytest.raises(ValueError, match="psql printed nothing"):
        show.from_csv("")

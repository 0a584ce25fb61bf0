"""doctor --format prometheus: the gauges of live use beside the plan, parsed back with prometheus_client.

The renderer is fed hand-built snapshots (tests/unit/snapshots.py) with their real plan; one test runs the
whole command on the fixture inventory with ``gather.read_all`` replaced (fakes only here, where the
subject is rendering and exit codes).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.unit import snapshots as s
from toolkit import gather
from toolkit.cli.app import main
from toolkit.cli.render_findings import render_prometheus
from toolkit.domain.findings import Severity
from toolkit.domain.metrics import metrics
from toolkit.domain.sizing import plan
from toolkit.domain.snapshot import TargetStatus

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "tests" / "fixtures" / "inventories" / "small.yml")
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]

TOPO = s.topology(
    pgbouncers=(s.pgbouncer_host(), s.pgbouncer_host("pgb2", processes=2, listen_addr="10.0.0.6")),
    app_nodes=(
        s.app_node(pgbouncer_hosts=("pgb1", "pgb2")),
        s.app_node("web2", address="10.0.1.2", pgbouncer_hosts=("pgb2",)),
    ),
)
PLAN = plan(TOPO)
PGB1, PGB2 = PLAN.pgbouncer


def parse(text: str) -> tuple[Series, dict[str, str]]:
    """Every sample by (name, sorted labels), and every family's type; no series may repeat."""
    series: Series = {}
    types: dict[str, str] = {}
    for family in text_string_to_metric_families(text):
        types[family.name] = family.type
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in series, key
            series[key] = sample.value
    return series, types


def pool(host: str, process: str, database: str = "app", user: str = "app") -> tuple[tuple[str, str], ...]:
    return (("database", database), ("host", host), ("process", process), ("user", user))


def _snapshot() -> Any:
    waiting = tuple(s.conn(state="waiting", addr="10.0.1.2", port=p) for p in (1, 2))
    size2 = PGB2.value("default_pool_size")
    return s.snapshot(
        TOPO,
        pgbouncer=(
            s.pgbouncer_state(
                pools=(
                    s.pool(cl_active=3, sv_active=2, sv_idle=1, sv_used=4),
                    s.pool("pgbouncer", "pgbouncer"),
                )
            ),
            s.pgbouncer_state(
                host="pgb2",
                address="10.0.0.6:6432 process 2",
                pools=(s.pool(cl_active=size2, cl_waiting=3, sv_active=size2, maxwait_seconds=1.5),),
                clients=waiting,
            ),
        ),
        postgres=s.postgres_state([s.backend(1), s.backend(2)]),
        redis=(
            s.redis_state(info={"evicted_keys": 11, "rejected_connections": 2, "connected_clients": 21}),
            s.redis_state("broker1", config={"maxmemory": "0", "maxclients": "40"}),
        ),
    )


def test_pool_gauges_per_process_beside_the_plan() -> None:
    got, types = parse(render_prometheus(Severity.OK, [], [], metrics(_snapshot())))
    p1, p2 = pool("pgb1", "1"), pool("pgb2", "2")
    assert got[("toolkit_pgbouncer_pool_clients_active", p1)] == 3
    assert got[("toolkit_pgbouncer_pool_servers_active", p1)] == 2
    assert got[("toolkit_pgbouncer_pool_servers_idle", p1)] == 1
    assert got[("toolkit_pgbouncer_pool_servers_used", p1)] == 4
    assert got[("toolkit_pgbouncer_pool_clients_waiting", p2)] == 3
    assert got[("toolkit_pgbouncer_pool_maxwait_seconds", p2)] == 1.5
    assert got[("toolkit_pgbouncer_pool_utilisation_ratio", p1)] == 2 / PGB1.value("default_pool_size")
    assert got[("toolkit_pgbouncer_pool_utilisation_ratio", p2)] == 1.0
    # The admin console's pseudo-database is not a pool of the app.
    assert not any(dict(labels).get("database") == "pgbouncer" for _, labels in got)
    # pgb2's process 1 was not read: no live series, but its planned limits are there.
    assert ("toolkit_pgbouncer_pool_clients_active", pool("pgb2", "1")) not in got
    for host, process, mine in (("pgb1", "1", PGB1), ("pgb2", "1", PGB2), ("pgb2", "2", PGB2)):
        labels = pool(host, process)
        assert got[("toolkit_pgbouncer_pool_size_planned", labels)] == mine.value("default_pool_size")
        assert got[("toolkit_pgbouncer_reserve_pool_size_planned", labels)] == mine.value("reserve_pool_size")
        at = (("host", host), ("process", process))
        assert got[("toolkit_pgbouncer_max_client_conn_planned", at)] == mine.value("max_client_conn")
        per_db = (("database", "app"), *at)
        assert got[("toolkit_pgbouncer_max_db_connections_planned", per_db)] == mine.value(
            "max_db_connections"
        )
    assert {types[n] for n in types if n.startswith("toolkit_pgbouncer_")} == {"gauge"}


def test_waiting_clients_carry_the_app_node() -> None:
    got, _ = parse(render_prometheus(Severity.OK, [], [], metrics(_snapshot())))
    by_app = {
        dict(labels)["app_node"]: value
        for (name, labels), value in got.items()
        if name == "toolkit_pgbouncer_pool_clients_waiting_by_app" and dict(labels)["host"] == "pgb2"
    }
    # web1 and web2 are routed to pgb2; two waiting clients come from web2's address, the third was
    # counted by SHOW POOLS but not listed by SHOW CLIENTS.
    assert by_app == {"web1": 0, "web2": 2, "unknown": 1}


def test_postgres_and_redis_gauges_and_counters() -> None:
    got, types = parse(render_prometheus(Severity.OK, [], [], metrics(_snapshot())))
    pg = (("host", "10.0.0.9"),)
    assert got[("toolkit_postgres_connections", pg)] == 3  # two client backends + doctor's own
    assert got[("toolkit_postgres_usable_connections", pg)] == 97
    assert got[("toolkit_postgres_connections_utilisation_ratio", pg)] == 3 / 97
    cache, broker = (("host", "cache1"), ("role", "cache")), (("host", "broker1"), ("role", "broker"))
    assert got[("toolkit_redis_connected_clients", cache)] == 21
    assert got[("toolkit_redis_maxclients", cache)] == 42
    assert got[("toolkit_redis_clients_utilisation_ratio", cache)] == 0.5
    assert got[("toolkit_redis_memory_used_bytes", cache)] == 1048576
    assert got[("toolkit_redis_maxmemory_bytes", cache)] == 128 * 1024 * 1024
    assert got[("toolkit_redis_memory_utilisation_ratio", cache)] == 1048576 / (128 * 1024 * 1024)
    assert got[("toolkit_redis_evicted_keys_total", cache)] == 11
    assert got[("toolkit_redis_rejected_connections_total", cache)] == 2
    assert types["toolkit_redis_evicted_keys"] == types["toolkit_redis_rejected_connections"] == "counter"
    # maxmemory 0 is no limit: no maxmemory series and no ratio for the broker.
    assert ("toolkit_redis_maxmemory_bytes", broker) not in got
    assert ("toolkit_redis_memory_utilisation_ratio", broker) not in got
    assert got[("toolkit_redis_clients_utilisation_ratio", broker)] == 12 / 40


def test_nothing_read_and_no_plan_leave_only_what_is_known() -> None:
    snap = replace(_snapshot(), pgbouncer=(), postgres=None, redis=(), plan=None)
    got, _ = parse(render_prometheus(Severity.UNKNOWN, [], [], metrics(snap)))
    assert {name for name, _ in got} == {"toolkit_doctor_status"}


def test_doctor_writes_the_gauges_to_the_output_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def read_all(endpoints: Any, secrets: Any, timeout: float, processes: Any = None) -> Any:
        statuses = [
            TargetStatus("pgb1", "pgbouncer", "127.0.0.1:6432", True, 0.01),
            TargetStatus("postgres", "postgres", "127.0.0.1:5432", False, 0.01, "connection refused", "e"),
        ]
        busy = s.pool(cl_active=2, cl_waiting=1, sv_active=2)
        waiter = s.conn(state="waiting", addr="web1")  # the inventory gives web1 no ansible_host
        return statuses, [s.pgbouncer_state(address="127.0.0.1:6432", pools=(busy,), clients=(waiter,))]

    for name in ("SECRETS_DIR", "PGBOUNCER_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        monkeypatch.delenv(f"TOOLKIT_{name}", raising=False)
    monkeypatch.setattr(gather, "read_all", read_all)
    target = tmp_path / "toolkit.prom"
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", SMALL, "--format", "prometheus", "--output", str(target)])
    out, _ = capsys.readouterr()
    assert (done.value.code, out) == (3, "")  # PostgreSQL not read: UNKNOWN
    got, _ = parse(target.read_text())
    assert got[("toolkit_pgbouncer_pool_clients_waiting", pool("pgb1", "1"))] == 1
    waiting = (*pool("pgb1", "1"), ("app_node", "web1"))
    assert got[("toolkit_pgbouncer_pool_clients_waiting_by_app", tuple(sorted(waiting)))] == 1
    assert not any(name.startswith("toolkit_postgres_") for name, _ in got)  # not read: no series
    up = (("address", "127.0.0.1:5432"), ("kind", "postgres"), ("name", "postgres"))
    assert got[("toolkit_doctor_target_up", up)] == 0

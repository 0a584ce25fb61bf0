"""doctor --format prometheus --output FILE against the lab: the gauges of both PgBouncer hosts (each of
pgb2's two processes on its own), PostgreSQL and both Redis hosts, with the planned limits equal to
`toolkit plan`'s, and a saturated pool on pgb1 seen as waiting clients, utilisation above 1 and the
waiting clients' origin (this machine: no app node of the inventory, so "unknown")."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import BIN, LAB_INVENTORY, ROOT, app_connection, open_at_once

Labels = tuple[tuple[str, str], ...]


def doctor_metrics(tmp_path: Path) -> dict[str, dict[Labels, float]]:
    """Run doctor into a file and parse it: metric name -> labels -> value (no series may repeat)."""
    out = tmp_path / "toolkit.prom"
    proc = subprocess.run(
        [
            str(BIN / "toolkit"),
            "doctor",
            "-i",
            str(LAB_INVENTORY),
            "--secrets",
            str(ROOT / ".lab"),
            "--format",
            "prometheus",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode in (0, 1, 2), proc.stderr  # not 3: every target was read
    assert proc.stdout == ""
    got: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(out.read_text()):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            assert labels not in got.get(sample.name, {}), (sample.name, labels)
            got.setdefault(sample.name, {})[labels] = sample.value
    return got


def where(series: dict[Labels, float], **want: str) -> dict[Labels, float]:
    """The series whose labels include ``want``."""
    return {k: v for k, v in series.items() if want.items() <= dict(k).items()}


@contextmanager
def pools_on_every_process(connections: int = 16) -> Iterator[None]:
    """Idle app connections through pgb1 and pgb2: the kernel spreads pgb2's over its two processes, so
    each process has the app pool (all 16 on one process: a chance of 2**-15)."""
    with ExitStack() as stack:
        for i in range(connections):
            host = "pgb1" if i == 0 else "pgb2"
            conn = stack.enter_context(app_connection("metrics-test", pgbouncer=host))
            conn.execute("SELECT 1")
            conn.commit()
        yield


def test_gauges_for_every_target_match_the_plan(tmp_path: Path, lab_plan: dict[str, Any]) -> None:
    with pools_on_every_process():
        got = doctor_metrics(tmp_path)
    for labels, up in got["toolkit_doctor_target_up"].items():
        assert up == 1, labels
    for host, processes in (("pgb1", ("1",)), ("pgb2", ("1", "2"))):
        planned = lab_plan["pgbouncer"][host]
        assert planned["processes"] == len(processes)
        settings = planned["settings"]
        for process in processes:
            live = where(got["toolkit_pgbouncer_pool_clients_active"], host=host, process=process, user="app")
            assert len(live) == 1, (host, process, got["toolkit_pgbouncer_pool_clients_active"])
            pool = {"host": host, "process": process, "database": "app", "user": "app"}
            for name in (
                "servers_active",
                "servers_idle",
                "servers_used",
                "clients_waiting",
                "maxwait_seconds",
            ):
                assert len(where(got[f"toolkit_pgbouncer_pool_{name}"], **pool)) == 1, name
            size = where(got["toolkit_pgbouncer_pool_size_planned"], **pool)
            assert list(size.values()) == [settings["default_pool_size"]]
            reserve = where(got["toolkit_pgbouncer_reserve_pool_size_planned"], **pool)
            assert list(reserve.values()) == [settings["reserve_pool_size"]]
            clients = where(got["toolkit_pgbouncer_max_client_conn_planned"], host=host, process=process)
            assert list(clients.values()) == [settings["max_client_conn"]]
            per_db = where(got["toolkit_pgbouncer_max_db_connections_planned"], host=host, process=process)
            assert list(per_db.values()) == [settings["max_db_connections"]]
            ratio = where(got["toolkit_pgbouncer_pool_utilisation_ratio"], **pool)
            active = where(got["toolkit_pgbouncer_pool_servers_active"], **pool)
            assert list(ratio.values()) == [next(iter(active.values())) / settings["default_pool_size"]]
            by_app = where(got["toolkit_pgbouncer_pool_clients_waiting_by_app"], **pool)
            assert {dict(k)["app_node"] for k in by_app} >= {"app1", "app2"}  # both routed to both hosts
    budget = {line["item"]: line["value"] for line in lab_plan["budget"]["lines"]}
    usable = budget["max_connections"] + budget["superuser_reserved_connections"]  # the lines are negative
    usable += budget.get("reserved_connections", 0)
    [(pg_labels, pg_usable)] = got["toolkit_postgres_usable_connections"].items()
    assert pg_usable == usable
    [(_, connections)] = got["toolkit_postgres_connections"].items()
    assert 1 <= connections <= lab_plan["budget"]["max_connections"]
    assert got["toolkit_postgres_connections_utilisation_ratio"][pg_labels] == connections / usable
    for host, role in (("redis1", "cache"), ("redis2", "broker")):
        planned = lab_plan["redis"][host]["settings"]
        at: Labels = (("host", host), ("role", role))
        assert got["toolkit_redis_maxclients"][at] == planned["maxclients"]
        assert got["toolkit_redis_maxmemory_bytes"][at] == planned["maxmemory"]
        assert got["toolkit_redis_connected_clients"][at] >= 1  # doctor's own session at least
        assert got["toolkit_redis_memory_used_bytes"][at] > 0
        for name in ("clients_utilisation_ratio", "memory_utilisation_ratio"):
            assert 0 < got[f"toolkit_redis_{name}"][at] < 1, name
        assert got["toolkit_redis_evicted_keys_total"][at] >= 0
        assert got["toolkit_redis_rejected_connections_total"][at] >= 0


def test_a_saturated_pool_shows_waiting_clients_and_where_they_come_from(
    tmp_path: Path, lab_plan: dict[str, Any]
) -> None:
    settings = lab_plan["pgbouncer"]["pgb1"]["settings"]
    holders = settings["default_pool_size"] + settings["reserve_pool_size"]
    held: list[psycopg.Connection[Any]] = []
    waiters: list[threading.Thread] = []
    # The waiters log in first: their login (auth_query) needs a server connection itself.
    idle = [app_connection("metrics-waiter") for _ in range(2)]

    def hold() -> psycopg.Connection[Any]:
        conn = app_connection("metrics-holder")
        conn.execute("SELECT 1")  # psycopg opened a transaction: the server connection stays held
        return conn

    try:
        held = open_at_once(holders, hold)  # the reserve's holders wait reserve_pool_timeout together

        def wait_for_a_connection(conn: psycopg.Connection[Any]) -> None:
            with suppress(psycopg.Error):
                conn.execute("SELECT 1")

        for conn in idle:
            t = threading.Thread(target=wait_for_a_connection, args=(conn,), daemon=True)
            t.start()
            waiters.append(t)
        time.sleep(1)
        got = doctor_metrics(tmp_path)
    finally:
        for conn in held:
            conn.close()
        for t in waiters:
            t.join(timeout=30)
        for conn in idle:
            conn.close()
    pool = {"host": "pgb1", "process": "1", "database": "app", "user": "app"}
    [waiting] = where(got["toolkit_pgbouncer_pool_clients_waiting"], **pool).values()
    assert waiting >= 2
    [ratio] = where(got["toolkit_pgbouncer_pool_utilisation_ratio"], **pool).values()
    assert ratio == holders / settings["default_pool_size"]  # the reserve is in use too
    by_app = {
        dict(k)["app_node"]: v
        for k, v in where(got["toolkit_pgbouncer_pool_clients_waiting_by_app"], **pool).items()
    }
    # The waiters run on this machine (198.18.0.1), which no app node of the inventory is.
    assert by_app["unknown"] >= 2, by_app
    assert by_app.get("app1", 0) + by_app.get("app2", 0) + by_app["unknown"] >= waiting
    [connections] = got["toolkit_postgres_connections"].values()
    assert connections >= holders

"""The rows behind doctor's gauges and ``toolkit watch``: live pools beside the plan, waiting clients by
app node, PostgreSQL slots, Redis limits."""

from __future__ import annotations

from dataclasses import replace

from tests.unit import snapshots as s
from toolkit.domain.metrics import (
    PoolRow,
    by_pressure,
    metrics,
    planned_processes,
    pool_rows,
    postgres_row,
    redis_row,
)
from toolkit.domain.models import Topology
from toolkit.domain.sizing import plan

TWO_PROCESSES = s.pgbouncer_host("pgb2", processes=2, listen_addr="10.0.0.6")


def _topology() -> Topology:
    return s.topology(
        pgbouncers=(s.pgbouncer_host(), TWO_PROCESSES),
        app_nodes=(
            s.app_node(pgbouncer_hosts=("pgb1", "pgb2")),
            s.app_node("web2", address="10.0.1.2", pgbouncer_hosts=("pgb1",)),
        ),
    )


def test_planned_limits_for_every_process_of_every_host() -> None:
    topo = _topology()
    result = plan(topo)
    planned = planned_processes(topo, result)
    assert [(p.host, p.process) for p in planned] == [("pgb1", "1"), ("pgb2", "1"), ("pgb2", "2")]
    for p in planned:
        mine = next(x for x in result.pgbouncer if x.host == p.host)
        assert p.default_pool_size == mine.value("default_pool_size")
        assert p.reserve_pool_size == mine.value("reserve_pool_size")
        assert p.max_client_conn == mine.value("max_client_conn")
        assert p.max_db_connections == mine.value("max_db_connections")
        assert (p.databases, p.users) == (("app",), ("app",))
    assert planned_processes(topo, None) == ()


def test_pool_rows_carry_the_plan_the_process_and_leave_the_admin_database_out() -> None:
    topo = _topology()
    result = plan(topo)
    size = result.pgbouncer[1].value("default_pool_size")
    states = [
        s.pgbouncer_state(pools=(s.pool(sv_active=3), s.pool("pgbouncer", "pgbouncer"))),
        s.pgbouncer_state(
            host="pgb2", address="10.0.0.6:6432 process 2", pools=(s.pool(sv_active=size, cl_waiting=2),)
        ),
    ]
    rows = pool_rows(topo.app_nodes, result, states)
    assert [(r.host, r.process, r.database) for r in rows] == [("pgb1", "1", "app"), ("pgb2", "2", "app")]
    assert rows[0].pool_size_planned == result.pgbouncer[0].value("default_pool_size")
    assert rows[0].utilisation == 3 / result.pgbouncer[0].value("default_pool_size")
    assert rows[1].utilisation == 1.0
    assert (rows[0].saturated, rows[1].saturated) == (False, True)
    # Without a plan: the live values, no planned limit, no utilisation.
    bare = pool_rows(topo.app_nodes, None, states)
    assert bare[0].pool_size_planned is None and bare[0].utilisation is None
    assert bare[0].sv_active == 3


def test_waiting_clients_by_app_node_with_unknown_and_zero_rows() -> None:
    topo = _topology()
    waiting = [
        s.conn(state="waiting", addr="10.0.1.1", port=1),
        s.conn(state="waiting", addr="10.0.1.1", port=2),
        s.conn(state="waiting", addr="10.9.9.9", port=3),  # no app node has this address
        s.conn(state="active", addr="10.0.1.2", port=4),  # not waiting
        s.conn(state="waiting", addr="10.0.1.2", port=5, database="other"),  # another pool
    ]
    pgb1 = s.pgbouncer_state(pools=(s.pool(cl_waiting=4),), clients=tuple(waiting))
    pgb2 = s.pgbouncer_state(host="pgb2", pools=(s.pool(cl_waiting=0),), clients=())
    rows = pool_rows(topo.app_nodes, plan(topo), [pgb1, pgb2])
    # web1 2, web2 0 (routed to pgb1, none waiting), unknown: 1 by address + 1 that SHOW CLIENTS missed
    assert rows[0].waiting_by_app == (("web1", 2), ("web2", 0), ("unknown", 2))
    # pgb2: only web1 is routed there; nothing waits, and no unknown row appears
    assert rows[1].waiting_by_app == (("web1", 0),)


def test_pressure_order_waiting_first_then_utilisation() -> None:
    def row(name: str, waiting: int, active: int) -> PoolRow:
        return PoolRow(name, "1", "a", "app", "app", 0, waiting, active, 0, 0, float(waiting), 10)

    rows = [row("calm", 0, 1), row("busy", 0, 9), row("waits", 3, 10), row("full", 0, 10)]
    assert [r.host for r in by_pressure(rows)] == ["waits", "full", "busy", "calm"]


def test_postgres_slots_used_against_usable() -> None:
    topo = _topology()
    backends = [
        s.backend(1),
        s.backend(2),
        s.backend(3, backend_type="autovacuum worker"),
        s.backend(4, backend_type="walsender"),
    ]
    row = postgres_row(topo, s.postgres_state(backends, reserved_connections="2"))
    assert row is not None
    # Two client backends plus doctor's own session; 100 - 3 superuser - 2 reserved.
    assert (row.host, row.connections, row.max_connections, row.usable) == ("10.0.0.9", 3, 100, 95)
    assert row.utilisation == 3 / 95
    # PostgreSQL before 16 has no reserved_connections setting.
    old = replace(
        s.postgres_state(), settings={"max_connections": "50", "superuser_reserved_connections": "3"}
    )
    assert postgres_row(topo, old).usable == 47  # type: ignore[union-attr]
    assert postgres_row(topo, None) is None


def test_redis_rows_limits_counters_and_role() -> None:
    topo = _topology()
    cache = redis_row(
        topo,
        s.redis_state(info={"connected_clients": 21, "evicted_keys": 7, "rejected_connections": 2}),
    )
    assert (cache.host, cache.role, cache.connected_clients, cache.maxclients) == ("cache1", "cache", 21, 42)
    assert cache.clients_utilisation == 0.5
    assert cache.memory_utilisation == 1048576 / (128 * 1024 * 1024)
    assert (cache.evicted_keys_total, cache.rejected_connections_total) == (7, 2)
    unlimited = redis_row(topo, s.redis_state("broker1", config={"maxmemory": "0", "maxclients": "10"}))
    assert (unlimited.role, unlimited.maxmemory_bytes, unlimited.memory_utilisation) == ("broker", None, None)
    stranger = redis_row(topo, s.redis_state("other"))
    assert stranger.role == ""


def test_metrics_of_a_snapshot_with_a_target_missing() -> None:
    topo = _topology()
    snap = s.snapshot(topo, pgbouncer=(s.pgbouncer_state(),), redis=(s.redis_state(),))
    rows = metrics(snap)
    assert len(rows.planned) == 3  # planned limits come from the inventory
    assert [r.host for r in rows.pools] == ["pgb1"]  # pgb2 was not read: no live rows
    assert rows.postgres is None
    assert [r.host for r in rows.redis] == ["cache1"]

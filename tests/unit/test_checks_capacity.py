"""capacity.* checks on hand-built snapshots: each id just inside, at and past its threshold.

The default topology's plan (tests/unit/snapshots.py): 20 server connections, 6 bypass, 3 reserved
for superusers, so PostgreSQL needs max_connections 29; 16 clients + 5 admin slots, so PgBouncer
needs max_client_conn 21; 21 clients + 1 pool x (16 + 4) servers, so it needs 41 open files.
"""

from __future__ import annotations

import pytest

from tests.unit import snapshots as s
from tests.unit.snapshots import C, Case, W
from toolkit.domain.checks import capacity
from toolkit.domain.findings import Finding
from toolkit.domain.models import PoolMode, SizingOverrides

P = "capacity."
EXCEED = P + "server_connections_exceed_db"
CLIENTS = P + "client_demand_exceeds_max_client_conn"
SESSION = P + "session_mode_pool_too_small"
HEADROOM = P + "no_failover_headroom"
FD = P + "fd_limit_too_low"
PGB, PG = f"pgbouncer@{s.PGB_ADDRESS}", f"postgres@{s.PG_ADDRESS}"
RESIZE, RAISE = "pgbouncer-resize-pool", "pgbouncer-raise-max-client-conn"


def _live_pg(max_connections: int, **settings: str) -> s.Snapshot:
    return s.snapshot(postgres=s.postgres_state(max_connections=str(max_connections), **settings))


def _live_pgb(topo: s.Topology | None = None, **state: object) -> s.Snapshot:
    return s.snapshot(topo, pgbouncer=(s.pgbouncer_state(topo, **state),))


def _overrides(**values: int) -> s.Topology:
    return s.topology(pgbouncers=[s.pgbouncer_host(overrides=SizingOverrides(**values))])


TWO_PGB = [s.pgbouncer_host("pgb1"), s.pgbouncer_host("pgb2", listen_addr="10.0.0.6")]
SESSION_PGB = s.pgbouncer_host(pool_mode=PoolMode.SESSION)


def _session_config(pool: int) -> dict[str, str]:
    return s.planned_config(pool_mode="session", default_pool_size=pool)


CASES = [
    # server_connections_exceed_db: the live max_connections against pools + bypass + reserved.
    Case(EXCEED, "live max_connections leaves exactly enough", _live_pg(29), None),
    Case(EXCEED, "the inventory's max_connections", _live_pg(100), None),
    Case(
        EXCEED,
        "live max_connections one short",
        _live_pg(28),
        C,
        PG,
        {"max_connections": 28, "needed": 29, "inventory_max_connections": 100},
        RESIZE,
        "plus 6 bypass and 3 reserved = 29, but PostgreSQL's max_connections is 28",
    ),
    Case(
        EXCEED,
        "reserved_connections count too",
        _live_pg(30, reserved_connections="2"),
        C,
        PG,
        {"max_connections": 30, "needed": 31},
        RESIZE,
    ),
    Case(
        EXCEED,
        "RDS's rds_superuser reserved slots count too",
        _live_pg(30, **{"rds.rds_superuser_reserved_connections": "2"}),
        C,
        PG,
        {"max_connections": 30, "needed": 31},
        RESIZE,
    ),
    Case(
        EXCEED,
        "the plan does not fit (pinned pool over the budget)",
        s.snapshot(_overrides(default_pool_size=100)),
        C,
        "inventory",
        {"rule": "budget"},
        RESIZE,
        "pgbouncer_default_pool_size 100 exceeds the budget",
    ),
    Case(
        EXCEED,
        "the pinned pool at the budget's cap fits",
        s.snapshot(_overrides(default_pool_size=91, reserve_pool_size=0)),
        None,
    ),
    Case(
        EXCEED,
        "an app node routed to an unknown PgBouncer",
        s.snapshot(s.topology(app_nodes=[s.app_node(pgbouncer_hosts=("nosuch",))])),
        C,
        "inventory",
        {"rule": "routing"},
        RESIZE,
    ),
    Case(
        EXCEED,
        "min_pool_size above the pool",
        s.snapshot(_overrides(default_pool_size=10, min_pool_size=11)),
        C,
        "inventory",
        {"rule": "override"},
        RESIZE,
    ),
    # client_demand_exceeds_max_client_conn: 16 routed clients + 5 admin slots = 21.
    Case(CLIENTS, "live max_client_conn is the plan's", _live_pgb(), None),
    Case(
        CLIENTS,
        "live max_client_conn one short",
        _live_pgb(config=s.planned_config(max_client_conn=20)),
        C,
        PGB,
        {"max_client_conn": 20, "routed_clients": 16, "needed": 21},
        RAISE,
        "16 clients are routed here plus 5 admin slots = 21, but max_client_conn is 20",
    ),
    Case(
        CLIENTS,
        "pinned max_client_conn below the demand",
        s.snapshot(_overrides(max_client_conn=20)),
        C,
        "inventory",
        {"rule": "client_conn"},
        RAISE,
    ),
    Case(CLIENTS, "pinned max_client_conn at the demand", s.snapshot(_overrides(max_client_conn=21)), None),
    # session_mode_pool_too_small: 16 clients per process in session mode.
    Case(SESSION, "session pool as large as its clients", _live_pgb(config=_session_config(16)), None),
    Case(
        SESSION,
        "session pool one short",
        _live_pgb(config=_session_config(15)),
        C,
        PGB,
        {"default_pool_size": 15, "clients_per_process": 16},
        RESIZE,
        "16 clients per process, default_pool_size 15",
    ),
    Case(
        SESSION,
        "a small pool in transaction mode",
        _live_pgb(config=s.planned_config(default_pool_size=4)),
        None,
    ),
    Case(
        SESSION,
        "session mode over the budget in the inventory",
        s.snapshot(s.topology(pgbouncers=[SESSION_PGB], max_connections=20)),
        C,
        "inventory",
        {"rule": "session"},
        RESIZE,
        "session mode holds a server connection per client, 16 clients per process",
    ),
    Case(
        SESSION,
        "session mode that fits the budget",
        s.snapshot(s.topology(pgbouncers=[SESSION_PGB], max_connections=30)),
        None,
    ),
    # no_failover_headroom: a shared tier of two hosts sized to lose none.
    Case(HEADROOM, "one PgBouncer host", s.snapshot(), None),
    Case(
        HEADROOM,
        "two shared hosts with headroom 1",
        s.snapshot(s.topology(pgbouncers=TWO_PGB, failover_headroom=1)),
        None,
    ),
    Case(
        HEADROOM,
        "two hosts, each node pinned to one",
        s.snapshot(
            s.topology(
                pgbouncers=TWO_PGB,
                app_nodes=[
                    s.app_node("web1", pgbouncer_hosts=("pgb1",)),
                    s.app_node("web2", pgbouncer_hosts=("pgb2",)),
                ],
            )
        ),
        None,
    ),
    Case(
        HEADROOM,
        "two shared hosts without headroom",
        s.snapshot(s.topology(pgbouncers=TWO_PGB)),
        W,
        "inventory",
        {"pgbouncer_hosts": 2, "shared_nodes": ["web1"], "failover_headroom": 0},
        None,
        "1 app node(s) share 2 PgBouncer hosts sized with no headroom",
    ),
    Case(
        HEADROOM,
        "headroom that leaves no host",
        s.snapshot(s.topology(pgbouncers=TWO_PGB, failover_headroom=2)),
        C,
        "inventory",
        {"rule": "headroom"},
        None,
        "none is left to serve it",
    ),
    # fd_limit_too_low: max_client_conn 21 + 1 pool x (16 + 4) = 41.
    Case(FD, "limit unknown (doctor is not on the host)", _live_pgb(fd_limit=None), None),
    Case(FD, "limit exactly enough", _live_pgb(fd_limit=41), None),
    Case(FD, "the usual 1024", _live_pgb(fd_limit=1024), None),
    Case(
        FD,
        "limit one short",
        _live_pgb(fd_limit=40),
        W,
        PGB,
        {"fd_limit": 40, "needed": 41},
        None,
        "open-files limit 40 is below max_client_conn 21 + server connections = 41",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_capacity_case(case: Case) -> None:
    s.verify(capacity.run(case.snap), case)


def test_every_id_has_a_reporting_and_a_quiet_case() -> None:
    assert s.uncovered(capacity.CATALOG, CASES) == []


def test_a_healthy_live_snapshot_has_no_capacity_finding() -> None:
    snap = s.snapshot(
        pgbouncer=(s.pgbouncer_state(fd_limit=1024),), postgres=s.postgres_state(), redis=(s.redis_state(),)
    )
    assert capacity.run(snap) == []


def test_offline_snapshot_checks_the_inventory_only() -> None:
    assert capacity.run(s.snapshot(offline=True)) == []


def test_live_checks_skip_a_pgbouncer_the_inventory_does_not_know() -> None:
    stranger = s.pgbouncer_state(host="pgb9", config=s.planned_config(max_client_conn=1), fd_limit=1)
    assert capacity.run(s.snapshot(pgbouncer=(stranger,))) == []


def test_an_infeasible_routing_is_reported_once() -> None:
    topo = s.topology(app_nodes=[s.app_node(pgbouncer_hosts=("nosuch",))])
    found = capacity.run(s.snapshot(topo, pgbouncer=(s.pgbouncer_state(),)))
    assert [f.id for f in found] == [EXCEED]


def test_summary_of_a_plan_error_drops_the_rule_prefix() -> None:
    found = capacity.run(s.snapshot(_overrides(default_pool_size=100)))
    assert found[0].summary.startswith("pgbouncer host pgb1: pgbouncer_default_pool_size 100")


def _runbook_cases() -> list[Case]:
    return [c for c in CASES if c.severity is not None]


def test_every_finding_names_its_catalogue_runbook() -> None:
    catalog = {info.id: info for info in capacity.CATALOG}
    found: list[Finding] = [f for c in _runbook_cases() for f in capacity.run(c.snap)]
    assert [(f.id, f.runbook) for f in found] == [(f.id, catalog[f.id].runbook) for f in found]


def test_documented() -> None:
    assert sorted(s.documented_ids("capacity")) == sorted(i.id for i in capacity.CATALOG)

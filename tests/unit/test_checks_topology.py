"""topology.* checks on hand-built snapshots: client connections per app address against the
inventory's declared demand (web1 at 10.0.1.1: 4 workers x 4 threads = 16, tolerated up to 20)."""

from __future__ import annotations

import pytest

from tests.unit import snapshots as s
from tests.unit.snapshots import Case, W
from toolkit.domain.checks import topology
from toolkit.domain.snapshot import ClientConn

DRIFT = "topology.client_count_drift"


def _seen(*clients: ClientConn, topo: s.Topology | None = None) -> s.Snapshot:
    return s.snapshot(topo, pgbouncer=(s.pgbouncer_state(topo, clients=clients),))


SHARED = s.topology(app_nodes=[s.app_node("web1"), s.app_node("celery1", workers=8, threads=2)])
NO_ADDRESS = s.topology(app_nodes=[s.app_node(address=None)])

CASES = [
    Case(DRIFT, "as declared", _seen(*s.clients(16)), None),
    Case(DRIFT, "25 % over, a deploy's overlap", _seen(*s.clients(20)), None),
    Case(
        DRIFT,
        "just over 25 %",
        _seen(*s.clients(21)),
        W,
        "app web1",
        {"address": "10.0.1.1", "app_nodes": ["web1"], "connections": 21, "declared": 16},
        None,
        "21 client connections from 10.0.1.1 (web1), 16 declared",
    ),
    Case(
        DRIFT, "admin sessions do not count", _seen(*s.clients(20), *s.clients(9, database="pgbouncer")), None
    ),
    Case(DRIFT, "an address no node declares", _seen(*s.clients(500, addr="10.9.9.9")), None),
    Case(DRIFT, "unix-socket clients without an address", _seen(*s.clients(50, addr="")), None),
    Case(DRIFT, "two nodes on one address, 40 of 32", _seen(*s.clients(40), topo=SHARED), None),
    Case(
        DRIFT,
        "two nodes on one address, 41 of 32",
        _seen(*s.clients(41), topo=SHARED),
        W,
        "app web1, celery1",
        {"app_nodes": ["web1", "celery1"], "connections": 41, "declared": 32},
    ),
    Case(
        DRIFT,
        "a node without an address is matched by name",
        _seen(*s.clients(21, addr="web1"), topo=NO_ADDRESS),
        W,
        "app web1",
        {"address": "web1", "connections": 21},
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_topology_case(case: Case) -> None:
    s.verify(topology.run(case.snap), case)


def test_every_id_has_a_reporting_and_a_quiet_case() -> None:
    assert s.uncovered(topology.CATALOG, CASES) == []


def test_clients_are_counted_over_every_pgbouncer() -> None:
    pgbs = [s.pgbouncer_host("pgb1"), s.pgbouncer_host("pgb2", listen_addr="10.0.0.6")]
    topo = s.topology(pgbouncers=pgbs, failover_headroom=1)
    first = s.pgbouncer_state(topo, clients=s.clients(11))
    second = s.pgbouncer_state(topo, host="pgb2", address="10.0.0.6:6432", clients=s.clients(10))
    found = s.one(topology.run(s.snapshot(topo, pgbouncer=(first, second))), DRIFT)
    assert found.evidence["connections"] == 21


def test_celery_and_extra_clients_are_declared_demand() -> None:
    topo = s.topology(app_nodes=[s.app_node(celery_concurrency=4, extra_clients=2)])  # 22, up to 27.5
    assert s.severity(topology.run(_seen(*s.clients(27), topo=topo)), DRIFT) is None
    assert s.severity(topology.run(_seen(*s.clients(28), topo=topo)), DRIFT) is W


def test_no_live_pgbouncer_no_finding() -> None:
    assert topology.run(s.snapshot(offline=True)) == []


def test_documented() -> None:
    assert sorted(s.documented_ids("topology")) == sorted(i.id for i in topology.CATALOG)

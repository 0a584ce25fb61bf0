"""postgres.* checks on hand-built snapshots: each id just inside, at and past its threshold, and
attribution of a backend to the app node that holds it through PgBouncer."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit import snapshots as s
from tests.unit.snapshots import C, Case, U, W
from toolkit.domain.checks import postgres
from toolkit.domain.snapshot import Backend

P = "postgres."
UNREACHABLE, NEAR_LIMIT, IDLE = P + "unreachable", P + "connections_near_limit", P + "idle_in_transaction"
XACT, QUERY, LOCK = P + "long_running_transaction", P + "long_running_query", P + "blocked_by_lock"
NO_TIMEOUT, BYPASS = P + "no_idle_in_transaction_timeout", P + "connections_bypass_pgbouncer"
PG = f"postgres@{s.PG_ADDRESS}"
TERMINATE, CANCEL = "terminate-idle-transactions", "cancel-long-queries"
MAX_DRIFT, RESERVED_DRIFT = P + "max_connections_drift", P + "reserved_connections_drift"


def _pg(*backends: Backend, **settings: str) -> s.Snapshot:
    return s.snapshot(postgres=s.postgres_state(backends, **settings))


def _pg_without(setting: str) -> s.Snapshot:
    state = s.postgres_state()
    settings = {k: v for k, v in state.settings.items() if k != setting}
    return s.snapshot(postgres=replace(state, settings=settings))


def _idle(age: float, state: str = "idle in transaction", **b: Any) -> s.Snapshot:
    return _pg(s.backend(4242, state=state, state_age=age, xact_age=age + 1, query_age=age + 1, **b))


def _query(age: float, **b: Any) -> s.Snapshot:
    return _pg(s.backend(4242, state="active", query_age=age, xact_age=age, state_age=age, **b))


def _xact(age: float, **b: Any) -> s.Snapshot:
    return _pg(s.backend(4242, state="active", query_age=1.0, state_age=1.0, xact_age=age, **b))


def _blocked(age: float, wait: str = "Lock") -> s.Snapshot:
    b = s.backend(
        4242,
        state="active",
        query_age=age,
        xact_age=age,
        state_age=age,
        wait_event_type=wait,
        blocked_by=(4100, 4101),
        query="UPDATE orders SET paid = true WHERE id = 7",
    )
    return _pg(b)


def _connections(n: int, others: int = 0) -> s.Snapshot:
    backends = [s.backend(1000 + i) for i in range(n)]
    backends += [s.backend(3000 + i, backend_type="autovacuum worker", usename="") for i in range(others)]
    return _pg(*backends)


def _direct(*backends: Backend, pooled: tuple[int, ...] = (), pgb_ok: bool = True) -> s.Snapshot:
    servers = tuple(s.conn("S", ptr=f"0xs{p}", remote_pid=p, addr="10.0.0.9", port=5432) for p in pooled)
    return s.snapshot(
        targets=(s.target("pgbouncer", ok=pgb_ok), s.target("postgres")),
        pgbouncer=(s.pgbouncer_state(servers=servers),),
        postgres=s.postgres_state(backends),
    )


SESSION_EVIDENCE = {
    "pid": 4242,
    "user": "app",
    "database": "app",
    "application_name": "",
    "client_addr": "10.0.0.5",
}
MANAGE = s.backend(1000, client_addr="10.0.1.1", application_name="manage.py")

END_BYPASS = "end-bypass-sessions"

CASES = [
    # unreachable
    Case(UNREACHABLE, "read fine", s.snapshot(targets=(s.target("postgres"),)), None),
    Case(
        UNREACHABLE,
        "authentication failed",
        s.snapshot(
            targets=(
                s.target(
                    "postgres",
                    ok=False,
                    cause="authentication failed",
                    error="postgres@10.0.0.9:5432: authentication failed during connect",
                    elapsed=0.123,
                ),
            )
        ),
        U,
        PG,
        {"cause": "authentication failed", "elapsed_s": 0.12},
        None,
        "postgres@10.0.0.9:5432: authentication failed during connect",
    ),
    # connections_near_limit: 100 - 3 reserved = 97 usable; WARNING from 77.6, CRITICAL from 92.15.
    Case(NEAR_LIMIT, "77 of 97", _connections(77), None),
    Case(NEAR_LIMIT, "77 client backends and 10 others", _connections(77, others=10), None),
    Case(
        NEAR_LIMIT,
        "78 of 97",
        _connections(78),
        W,
        PG,
        {"connections": 78, "usable": 97, "max_connections": 100, "reserved": 3},
        END_BYPASS,
        "78 client connections of 97 usable (100 max_connections - 3 reserved)",
    ),
    Case(NEAR_LIMIT, "92 of 97", _connections(92), W, PG, {"connections": 92}, runbook=END_BYPASS),
    Case(
        NEAR_LIMIT, "93 of 97", _connections(93), C, PG, {"connections": 93, "usable": 97}, runbook=END_BYPASS
    ),
    # idle_in_transaction: WARNING from 10 s, CRITICAL from 60 s in the state.
    Case(IDLE, "idle in transaction 9.9 s", _idle(9.9), None),
    Case(IDLE, "idle (no transaction) for an hour", _idle(3600.0, state="idle"), None),
    Case(
        IDLE,
        "idle in transaction 10 s",
        _idle(10.0),
        W,
        PG,
        {**SESSION_EVIDENCE, "state": "idle in transaction", "age_s": 10.0},
        TERMINATE,
        "pid 4242 app@app: idle in transaction for 10 s",
    ),
    Case(IDLE, "idle in transaction 59.9 s", _idle(59.9), W, PG, {"age_s": 59.9}, TERMINATE),
    Case(IDLE, "idle in transaction 60 s", _idle(60.0), C, PG, {"age_s": 60.0}, TERMINATE),
    Case(
        IDLE,
        "aborted transaction, 60 s",
        _idle(60.0, state="idle in transaction (aborted)", application_name="celery"),
        C,
        PG,
        {"state": "idle in transaction (aborted)", "application_name": "celery"},
        TERMINATE,
        "pid 4242 app@app (celery): idle in transaction (aborted) for 60 s",
    ),
    # long_running_query: an active query, WARNING from 30 s, CRITICAL from 300 s.
    Case(QUERY, "29.9 s", _query(29.9), None),
    Case(
        QUERY,
        "30 s",
        _query(30.0, query="SELECT count(*) FROM orders"),
        W,
        PG,
        {**SESSION_EVIDENCE, "state": "active", "age_s": 30.0, "query": "SELECT count(*) FROM orders"},
        CANCEL,
        "query running for 30 s",
    ),
    Case(QUERY, "300 s", _query(300.0), C, PG, {"age_s": 300.0}, CANCEL),
    Case(
        QUERY,
        "a long query text is cut at 120",
        _query(31.0, query="x" * 500),
        W,
        PG,
        {"query": "x" * 120},
        CANCEL,
    ),
    # long_running_transaction: open, running short queries, WARNING from 60 s, CRITICAL from 300 s.
    Case(XACT, "59.9 s", _xact(59.9), None),
    Case(
        XACT,
        "60 s",
        _xact(60.0),
        W,
        PG,
        {**SESSION_EVIDENCE, "state": "active", "age_s": 60.0},
        CANCEL,
        "transaction open for 60 s",
    ),
    Case(XACT, "300 s", _xact(300.0), C, PG, {"age_s": 300.0}, CANCEL),
    # blocked_by_lock: waiting on a heavyweight lock, WARNING from 5 s, CRITICAL from 60 s.
    Case(LOCK, "4.9 s", _blocked(4.9), None),
    Case(LOCK, "a light-weight lock, 100 s", _blocked(100.0, wait="LWLock"), None),
    Case(
        LOCK,
        "5 s",
        _blocked(5.0),
        W,
        PG,
        {"pid": 4242, "age_s": 5.0, "query": "UPDATE orders SET paid = true WHERE id = 7"},
        CANCEL,
        "waiting 5 s for a lock held by pid(s) 4100, 4101",
    ),
    Case(LOCK, "60 s", _blocked(60.0), C, PG, {"age_s": 60.0}, CANCEL),
    # no_idle_in_transaction_timeout
    Case(NO_TIMEOUT, "60 s timeout", _pg(), None),
    Case(
        NO_TIMEOUT,
        "timeout 0",
        _pg(idle_in_transaction_session_timeout="0"),
        W,
        PG,
        {"idle_in_transaction_session_timeout": 0},
        None,
        "idle_in_transaction_session_timeout is 0",
    ),
    Case(NO_TIMEOUT, "timeout empty", _pg(idle_in_transaction_session_timeout=""), W, PG),
    # connections_bypass_pgbouncer: app roles whose backend no PgBouncer server owns.
    Case(BYPASS, "every app backend is a PgBouncer server", _direct(MANAGE, pooled=(1000,)), None),
    Case(
        BYPASS,
        "the monitoring role connects directly",
        _direct(s.backend(1000, usename="toolkit_monitor")),
        None,
    ),
    Case(BYPASS, "a PgBouncer could not be read", _direct(MANAGE, pgb_ok=False), None),
    Case(BYPASS, "no PgBouncer state", _pg(MANAGE), None),
    Case(
        BYPASS,
        "one app backend straight to PostgreSQL",
        _direct(MANAGE, s.backend(1001), pooled=(1001,)),
        W,
        PG,
        {"count": 1, "sessions": ["1000 app 10.0.1.1 manage.py"]},
        END_BYPASS,
        "1 connection(s) of app roles reach PostgreSQL without PgBouncer",
    ),
    # max_connections_drift: the inventory (s.topology) says 100; live lower is CRITICAL, higher WARNING.
    Case(MAX_DRIFT, "live 100, inventory 100", _pg(), None),
    Case(MAX_DRIFT, "max_connections unreadable", _pg(max_connections=""), None),
    Case(
        MAX_DRIFT,
        "live 99: the plan oversubscribes",
        _pg(max_connections="99"),
        C,
        PG,
        {"max_connections": 99, "inventory_max_connections": 100},
        None,
        "max_connections is 99 live, 100 in the inventory: "
        "the plan counts 1 slot(s) PostgreSQL does not have",
    ),
    Case(
        MAX_DRIFT,
        "live 200: the plan under-uses",
        _pg(max_connections="200"),
        W,
        PG,
        {"max_connections": 200, "inventory_max_connections": 100},
        None,
        "the plan leaves 100 slot(s) unused",
    ),
    # reserved_connections_drift: the inventory says 3 superuser-reserved and 0 reserved.
    Case(RESERVED_DRIFT, "3 and 0, as the inventory", _pg(), None),
    Case(RESERVED_DRIFT, "PostgreSQL 15: no reserved_connections", _pg_without("reserved_connections"), None),
    Case(
        RESERVED_DRIFT,
        "superuser_reserved_connections 5 live",
        _pg(superuser_reserved_connections="5"),
        C,
        PG,
        {"superuser_reserved_connections": 5, "inventory_superuser_reserved_connections": 3},
        None,
        "superuser_reserved_connections 5 live, 3 in the inventory: "
        "the plan counts 2 reserved slot(s) as usable",
    ),
    Case(
        RESERVED_DRIFT,
        "RDS keeps 2 slots for rds_superuser the inventory does not count",
        _pg(**{postgres.RDS_RESERVED: "2"}),
        C,
        PG,
        {"reserved_connections": 2, "inventory_reserved_connections": 0},
        None,
        f"reserved_connections + {postgres.RDS_RESERVED} 2 live, 0 in the inventory",
    ),
    Case(
        RESERVED_DRIFT,
        "superuser_reserved_connections 1 live: the plan under-uses",
        _pg(superuser_reserved_connections="1"),
        W,
        PG,
        {"superuser_reserved_connections": 1},
        None,
        "the plan leaves 2 slot(s) unused",
    ),
    Case(
        RESERVED_DRIFT,
        "moved between the two: same budget, wrong names",
        _pg(superuser_reserved_connections="2", reserved_connections="1"),
        W,
        PG,
        {"superuser_reserved_connections": 2, "reserved_connections": 1},
        None,
        "the budget is unchanged",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_postgres_case(case: Case) -> None:
    s.verify(postgres.run(case.snap), case)


def test_every_id_has_a_reporting_and_a_quiet_case() -> None:
    assert s.uncovered(postgres.CATALOG, CASES) == []


def test_a_healthy_server_has_no_finding() -> None:
    backends = [s.backend(1000 + i, state="active", query_age=0.01, xact_age=0.01) for i in range(20)]
    servers = tuple(s.conn("S", ptr=f"0xs{i}", remote_pid=1000 + i) for i in range(20))
    snap = s.snapshot(
        targets=(s.target("pgbouncer"), s.target("postgres")),
        pgbouncer=(s.pgbouncer_state(servers=servers),),
        postgres=s.postgres_state(backends),
    )
    assert postgres.run(snap) == []


# Attribution: backend 4242 is PgBouncer server 0xs1 (remote_pid 4242), linked to client 0xc7,
# which connected from 10.0.1.1: app node web1.
ATTRIBUTED_BACKEND = s.backend(4242, state="idle in transaction", state_age=75.0, xact_age=80.0)
SERVER = s.conn("S", ptr="0xs1", link="0xc7", remote_pid=4242, addr="10.0.0.9", port=5432)
CLIENT = s.conn(ptr="0xc7", link="0xs1", addr=s.APP_ADDRESS, port=51234, application_name="gunicorn")


def _attributed(*clients: s.ClientConn, server: s.ClientConn = SERVER, topo: Any = None) -> s.Snapshot:
    return s.snapshot(
        topo,
        pgbouncer=(s.pgbouncer_state(topo, clients=(s.conn(ptr="0xc1"), *clients), servers=(server,)),),
        postgres=s.postgres_state([ATTRIBUTED_BACKEND]),
    )


def test_idle_transaction_is_attributed_to_the_app_node_holding_it() -> None:
    found = s.one(postgres.run(_attributed(CLIENT)), IDLE)
    assert found.severity is C
    assert found.summary == "pid 4242 app@app: idle in transaction for 75 s held by app node web1"
    assert found.evidence["app_node"] == "web1"
    assert found.evidence["client"] == "10.0.1.1:51234"
    assert found.evidence["client_application_name"] == "gunicorn"
    assert found.evidence["pgbouncer"] == s.PGB_ADDRESS
    assert found.evidence["age_s"] == 75.0


def test_attribution_names_every_node_sharing_the_address() -> None:
    topo = s.topology(app_nodes=[s.app_node("web1"), s.app_node("celery1")])
    found = s.one(postgres.run(_attributed(CLIENT, topo=topo)), IDLE)
    assert found.evidence["app_node"] == "web1 or celery1"
    assert found.summary.endswith("held by app node web1 or celery1")


def test_a_node_named_by_application_name_is_picked_among_those_sharing_the_address() -> None:
    topo = s.topology(app_nodes=[s.app_node("web1"), s.app_node("celery1")])
    named = replace(CLIENT, application_name="celery1")
    found = s.one(postgres.run(_attributed(named, topo=topo)), IDLE)
    assert found.evidence["app_node"] == "celery1"
    unknown = replace(CLIENT, application_name="web9")
    found = s.one(postgres.run(_attributed(unknown, topo=topo)), IDLE)
    assert found.evidence["app_node"] == "web1 or celery1"


def test_a_client_from_an_unknown_address_is_named_but_not_a_node() -> None:
    stranger = s.conn(ptr="0xc7", addr="10.9.9.9", port=50000)
    found = s.one(postgres.run(_attributed(stranger)), IDLE)
    assert "app_node" not in found.evidence
    assert found.evidence["client"] == "10.9.9.9:50000"
    assert "held by" not in found.summary


def test_a_server_linked_to_no_client_names_only_the_pgbouncer() -> None:
    idle_server = s.conn("S", ptr="0xs1", link="", remote_pid=4242)
    found = s.one(postgres.run(_attributed(CLIENT, server=idle_server)), IDLE)
    assert found.evidence["pgbouncer"] == s.PGB_ADDRESS
    assert {"client", "app_node"}.isdisjoint(found.evidence)
    assert "held by" not in found.summary


def test_attribution_map() -> None:
    assert postgres.attribution(_attributed(CLIENT)) == {
        4242: {
            "pgbouncer": s.PGB_ADDRESS,
            "client": "10.0.1.1:51234",
            "client_application_name": "gunicorn",
            "app_node": "web1",
        }
    }


def test_a_long_query_is_not_also_a_long_transaction() -> None:
    found = postgres.run(_query(100.0))
    assert [f.id for f in found] == [QUERY]


def test_a_blocked_query_is_also_a_long_query() -> None:
    found = postgres.run(_blocked(60.0))
    assert sorted((f.id, f.severity) for f in found) == [(LOCK, C), (QUERY, W)]


def test_no_postgres_state_only_reports_unreachable() -> None:
    assert postgres.run(s.snapshot(offline=True)) == []


def test_a_long_transaction_sampled_between_statements_is_reported() -> None:
    snap = _pg(s.backend(4242, state="idle in transaction", state_age=2.0, xact_age=400.0, query_age=2.5))
    assert s.severity(postgres.run(snap), XACT) is C


def test_a_long_query_does_not_hide_a_longer_transaction() -> None:
    snap = _pg(s.backend(4242, state="active", query_age=40.0, state_age=40.0, xact_age=1000.0))
    assert s.severity(postgres.run(snap), XACT) is C


def test_catalogue_runbooks_match_the_findings() -> None:
    catalog = {info.id: info.runbook for info in postgres.CATALOG}
    for case in CASES:
        for f in postgres.run(case.snap):
            assert f.runbook == catalog[f.id], (str(case), f.id)


def test_documented() -> None:
    assert sorted(s.documented_ids("postgres")) == sorted(i.id for i in postgres.CATALOG)


def test_drift_against_a_managed_inventory_that_counts_the_rds_slots() -> None:
    topo = s.topology()
    db = replace(topo.database, reserved_connections=2)
    snap = s.snapshot(replace(topo, database=db), postgres=s.postgres_state(**{postgres.RDS_RESERVED: "2"}))
    assert postgres.drift(snap, PG) == []

"""pgbouncer.* checks on hand-built snapshots: each id just inside, at and past its threshold."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit import snapshots as s
from tests.unit.snapshots import C, Case, U, W
from tests.unit.test_checks_pgbouncer_peers import PEERS_CASES
from toolkit.domain.checks import pgbouncer
from toolkit.domain.findings import Severity

P = "pgbouncer."
UNREACHABLE, WAITING, EXHAUSTED = P + "unreachable", P + "clients_waiting", P + "pool_exhausted"
NEAR_LIMIT, DRIFT, VERSION = P + "max_client_conn_near_limit", P + "config_drift", P + "version_outdated"
PGB = f"pgbouncer@{s.PGB_ADDRESS}"
TERMINATE = "terminate-idle-transactions"


def _live(**state: Any) -> s.Snapshot:
    return s.snapshot(pgbouncer=(s.pgbouncer_state(**state),))


def _waiting(maxwait: float, cl_waiting: int = 3, database: str = "app", **pool: Any) -> s.Snapshot:
    row = s.pool(database, cl_waiting=cl_waiting, cl_active=16, sv_active=12, maxwait_seconds=maxwait, **pool)
    return _live(pools=(row,))


def _busy(sv_active: int, cl_waiting: int = 3, **row: Any) -> s.Snapshot:
    """Pool app/app (16 + reserve 4 = 20) with ``sv_active`` servers busy, each linked to a client."""
    clients = tuple(
        s.conn(ptr=f"0xc{i}", port=40000 + i, application_name="gunicorn") for i in range(sv_active)
    )
    servers = tuple(s.conn("S", ptr=f"0xs{i}", link=f"0xc{i}", remote_pid=5000 + i) for i in range(sv_active))
    pool = s.pool(cl_active=sv_active, cl_waiting=cl_waiting, sv_active=sv_active, maxwait_seconds=0.2)
    return _live(pools=(pool,), databases=(s.database_row(**row),), clients=clients, servers=servers)


def _clients(app: int, limit: int = 100, admin: int = 0) -> s.Snapshot:
    conns = s.clients(app) + s.clients(admin, addr="10.0.0.2", database="pgbouncer")
    return _live(config=s.planned_config(max_client_conn=limit), clients=conns)


def _unreachable(**changes: Any) -> s.Snapshot:
    return s.snapshot(targets=(s.target("pgbouncer", ok=False, **changes), s.target("postgres")))


WAIT_EVIDENCE = {"database": "app", "user": "app", "cl_waiting": 3, "cl_active": 16, "sv_active": 12}

RAISE = "pgbouncer-raise-max-client-conn"

CASES = [
    # unreachable: any PgBouncer target doctor could not read.
    Case(UNREACHABLE, "read fine", s.snapshot(targets=(s.target("pgbouncer"),)), None),
    Case(
        UNREACHABLE,
        "only PostgreSQL is down",
        s.snapshot(targets=(s.target("pgbouncer"), s.target("postgres", ok=False))),
        None,
    ),
    Case(
        UNREACHABLE,
        "connection refused",
        _unreachable(),
        U,
        PGB,
        {"cause": "connection refused", "elapsed_s": 0.01},
        "pgbouncer-unresponsive",
        "pgbouncer@10.0.0.5:6432: connection refused during connect",
    ),
    Case(
        UNREACHABLE,
        "timed out",
        _unreachable(elapsed=3.0, cause="timed out after 3 s", error="pgbouncer@10.0.0.5:6432: timed out"),
        U,
        PGB,
        {"cause": "timed out after 3 s", "elapsed_s": 3.0},
        "pgbouncer-unresponsive",
    ),
    # clients_waiting: the oldest waiting client's wait, WARNING from 1 s, CRITICAL from 5 s.
    Case(WAITING, "nobody waits", _waiting(30.0, cl_waiting=0), None),
    Case(WAITING, "waiting just under 1 s", _waiting(0.99), None),
    Case(WAITING, "waiting 1 s", _waiting(1.0), W, PGB, {**WAIT_EVIDENCE, "maxwait_s": 1.0}, TERMINATE),
    Case(WAITING, "waiting just under 5 s", _waiting(4.999), W, PGB, {"maxwait_s": 4.999}, TERMINATE),
    Case(
        WAITING,
        "waiting 5 s",
        _waiting(5.0),
        C,
        PGB,
        {**WAIT_EVIDENCE, "maxwait_s": 5.0, "sv_idle": 0},
        TERMINATE,
        "pool app/app: 3 client(s) waiting, the oldest for 5.0 s",
    ),
    Case(WAITING, "the admin console's own pool", _waiting(30.0, database="pgbouncer"), None),
    # pool_exhausted: every server of a pool (pool_size + reserve = 20) busy while clients queue.
    Case(EXHAUSTED, "one server left", _busy(19), None),
    Case(EXHAUSTED, "all busy, nobody queued", _busy(20, cl_waiting=0), None),
    Case(
        EXHAUSTED,
        "all 20 busy and 3 queued",
        _busy(20),
        C,
        PGB,
        {"pool_size_with_reserve": 20, "cl_waiting": 3, "sv_active": 20},
        TERMINATE,
        "pool app/app: all 20 server connections busy, 3 client(s) queued",
    ),
    Case(
        EXHAUSTED,
        "no reserve pool",
        _live(
            pools=(s.pool(cl_waiting=1, sv_active=16),),
            databases=(s.database_row(reserve_pool_size=0),),
        ),
        C,
        PGB,
        {"pool_size_with_reserve": 16},
        TERMINATE,
    ),
    Case(
        EXHAUSTED,
        "pool size unknown",
        _live(pools=(s.pool(cl_waiting=1, sv_active=20),), databases=()),
        None,
    ),
    # max_client_conn_near_limit: WARNING from 80 %, CRITICAL from 95 % of max_client_conn.
    Case(NEAR_LIMIT, "79 of 100", _clients(79), None),
    Case(
        NEAR_LIMIT,
        "80 of 100",
        _clients(80),
        W,
        PGB,
        {"clients": 80, "max_client_conn": 100},
        RAISE,
        "80 of max_client_conn 100 client connections in use (80%)",
    ),
    Case(
        NEAR_LIMIT, "94 of 100", _clients(94), W, PGB, {"clients": 94, "max_client_conn": 100}, runbook=RAISE
    ),
    Case(
        NEAR_LIMIT, "95 of 100", _clients(95), C, PGB, {"clients": 95, "max_client_conn": 100}, runbook=RAISE
    ),
    Case(NEAR_LIMIT, "admin sessions do not count", _clients(79, admin=20), None),
    Case(NEAR_LIMIT, "16 of the planned 21", _clients(16, limit=21), None),
    Case(NEAR_LIMIT, "17 of the planned 21", _clients(17, limit=21), W, PGB, {"clients": 17}, runbook=RAISE),
    Case(NEAR_LIMIT, "20 of the planned 21", _clients(20, limit=21), C, PGB, {"clients": 20}, runbook=RAISE),
    Case(NEAR_LIMIT, "no max_client_conn in SHOW CONFIG", _live(config={}, clients=s.clients(50)), None),
    # config_drift: SHOW CONFIG against the plan of the same host.
    Case(DRIFT, "live values are the plan", _live(), None),
    Case(
        DRIFT,
        "a live SET default_pool_size",
        _live(config=s.planned_config(default_pool_size=20)),
        W,
        PGB,
        {"default_pool_size": {"planned": 16, "live": "20"}},
        "pgbouncer-reload",
        "live settings differ from the plan: default_pool_size 20 (plan 16)",
    ),
    Case(
        DRIFT,
        "pool_mode session instead of transaction",
        _live(config=s.planned_config(pool_mode="session")),
        W,
        PGB,
        {"pool_mode": {"planned": "transaction", "live": "session"}},
        "pgbouncer-reload",
    ),
    Case(DRIFT, "a setting SHOW CONFIG does not list", _live(config={"pool_mode": "transaction"}), None),
    Case(DRIFT, "a host the plan does not know", _live(host="pgb9", config={"max_client_conn": "1"}), None),
    # version_outdated: the table in toolkit/domain/versions.py (PgBouncer's NEWS); floor 1.26.1.
    Case(VERSION, "at the floor", _live(version="PgBouncer 1.26.1"), None),
    Case(VERSION, "above the floor, no patch number", _live(version="PgBouncer 1.27"), None),
    Case(VERSION, "unparsable", _live(version="unknown"), None),
    Case(
        VERSION,
        "non-ASCII digits are not a version",
        _live(version="PgBouncer \u0661.\u0662\u0666.\u0661"),
        None,
    ),
    Case(
        VERSION,
        "1.26.0: inside the SCRAM auth bypass range",
        _live(version="PgBouncer 1.26.0"),
        C,
        PGB,
        {"version": "1.26.0", "security_floor": "1.26.1", "prepared_statements": True},
        None,
        "has an authentication bypass (CVE-2026-107350)",
    ),
    Case(
        VERSION,
        "1.16.1: below the floor, before the bypass range",
        _live(version="PgBouncer 1.16.1"),
        W,
        PGB,
        {"version": "1.16.1", "security_floor": "1.26.1"},
        None,
        "PgBouncer 1.16.1 is older than the security floor 1.26.1",
    ),
    Case(
        VERSION,
        "Debian 12's 1.18: CRITICAL, and it lacks max_prepared_statements",
        _live(version="PgBouncer 1.18.0"),
        C,
        PGB,
        {"version": "1.18.0", "prepared_statements": False},
        None,
        "it also lacks max_prepared_statements (1.21+)",
    ),
    Case(
        VERSION,
        "the bypass acknowledged (a patched build): the rest stays a WARNING",
        replace(
            _live(version="PgBouncer 1.25.2"), acknowledged_cves={"pgb1": frozenset({"CVE-2026-107350"})}
        ),
        W,
        PGB,
        {"acknowledged": ["CVE-2026-107350"]},
        None,
        "older than the security floor",
    ),
    Case(
        VERSION,
        "every open CVE acknowledged: no finding",
        replace(
            _live(version="PgBouncer 1.25.2"),
            acknowledged_cves={"pgb1": frozenset({"CVE-2026-107350", "CVE-2026-107349", "CVE-2026-107348"})},
        ),
        None,
    ),
    Case(
        VERSION,
        "an acknowledgement for another host does not count",
        replace(
            _live(version="PgBouncer 1.26.0"), acknowledged_cves={"pgb2": frozenset({"CVE-2026-107350"})}
        ),
        C,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_pgbouncer_case(case: Case) -> None:
    s.verify(pgbouncer.run(case.snap), case)


def test_every_id_has_a_reporting_and_a_quiet_case() -> None:
    assert s.uncovered(pgbouncer.CATALOG, CASES + PEERS_CASES) == []


def test_a_healthy_pgbouncer_has_no_finding() -> None:
    snap = s.snapshot(targets=(s.target("pgbouncer"),), pgbouncer=(s.pgbouncer_state(clients=s.clients(16)),))
    assert pgbouncer.run(snap) == []


def test_exhausted_pool_names_its_holders() -> None:
    found = s.one(pgbouncer.run(_busy(20)), EXHAUSTED)
    assert found.evidence["holders"][:2] == ["10.0.1.1:40000 gunicorn", "10.0.1.1:40001 gunicorn"]
    assert len(found.evidence["holders"]) == 10  # capped


def test_an_exhausted_pool_with_a_long_wait_is_reported_twice() -> None:
    snap = _live(pools=(s.pool(cl_waiting=4, sv_active=20, maxwait_seconds=6.0),))
    assert sorted((f.id, f.severity) for f in pgbouncer.run(snap)) == [(WAITING, C), (EXHAUSTED, C)]


def test_no_live_state_no_finding() -> None:
    assert pgbouncer.run(s.snapshot(offline=True)) == []


def test_drift_lists_every_differing_setting() -> None:
    config = s.planned_config(default_pool_size=20, max_client_conn=100)
    found = s.one(pgbouncer.run(_live(config=config)), DRIFT)
    assert set(found.evidence) == {"default_pool_size", "max_client_conn"}


_RANK = {None: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}


@given(st.floats(0, 600), st.floats(0, 600))
def test_waiting_severity_never_falls_as_the_wait_grows(a: float, b: float) -> None:
    low, high = sorted((a, b))
    sev = [s.severity(pgbouncer.run(_waiting(w)), WAITING) for w in (low, high)]
    assert _RANK[sev[0]] <= _RANK[sev[1]]


@given(st.integers(1, 500), st.integers(0, 500))
def test_client_share_severity_matches_the_thresholds(limit: int, used: int) -> None:
    sev = s.severity(pgbouncer.run(_clients(used, limit=limit)), NEAR_LIMIT)
    share = used / limit
    expected = C if share >= 0.95 else W if share >= 0.8 else None
    assert sev is expected


def test_catalogue_runbooks_match_the_findings() -> None:
    catalog = {info.id: info.runbook for info in pgbouncer.CATALOG}
    for case in CASES:
        for f in pgbouncer.run(case.snap):
            assert f.runbook == catalog[f.id], (str(case), f.id)


def test_documented() -> None:
    assert sorted(s.documented_ids("pgbouncer")) == sorted(i.id for i in pgbouncer.CATALOG)

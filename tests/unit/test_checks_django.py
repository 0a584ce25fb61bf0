"""django.* checks on hand-built snapshots: each id at, and just around, its condition."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolkit.domain.checks import django as checks
from toolkit.domain.django import DatabaseAlias, DjangoProfile, route
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import (
    AppNode,
    DatabaseCapacity,
    PgBouncerHost,
    PoolMode,
    ServerKind,
    Topology,
)
from toolkit.domain.snapshot import PgBouncerState, Snapshot, TargetStatus

# The area's docs, or the catalogue they are merged into.
DOCS = [Path(__file__).resolve().parents[2] / "docs" / p for p in ("checks.d/django.md", "checks.md")]
W, C = Severity.WARNING, Severity.CRITICAL

# A central PgBouncer tier (pgb1, pgb2 on 10.0.0.5/6:6432) in front of PostgreSQL at 10.0.0.9:5432.
GOOD = DatabaseAlias(
    alias="default",
    engine="django.db.backends.postgresql",
    host="10.0.0.5",
    port=6432,
    name="shop",
    user="shop",
    conn_max_age=0,
    conn_health_checks=False,
    disable_server_side_cursors=True,
    atomic_requests=False,
    options={"connect_timeout": 5},
)


def _topology(
    mode: PoolMode = PoolMode.TRANSACTION,
    server: ServerKind = ServerKind.WSGI_SYNC,
    nodes: int = 2,
    workers: int = 4,
) -> Topology:
    pgbs = tuple(
        PgBouncerHost(f"pgb{i}", ("shop",), ("shop",), pool_mode=mode, listen_addr=f"10.0.0.{4 + i}")
        for i in (1, 2)
    )
    apps = tuple(AppNode(f"app{i}", server, workers=workers, threads=2) for i in range(1, nodes + 1))
    return Topology(DatabaseCapacity(100, 4, host="10.0.0.9", port=5432), pgbs, apps)


def _run(alias: DatabaseAlias, topology: Topology | None = None, **snap: Any) -> list[Finding]:
    profile = DjangoProfile("shop.settings", "5.2", (alias,), ())
    return checks.run(Snapshot(topology=topology or _topology(), plan=None, django=profile, **snap))


def _severity(found: list[Finding], fid: str) -> Severity | None:
    hits = [f for f in found if f.id == fid]
    assert len(hits) <= 1
    return hits[0].severity if hits else None


ASGI = ServerKind.ASGI
TX, SESSION, STATEMENT = PoolMode.TRANSACTION, PoolMode.SESSION, PoolMode.STATEMENT

CASES: list[tuple[str, str, dict[str, Any], dict[str, Any], Severity | None]] = [
    # (finding id, case, alias changes, topology arguments, expected severity or None)
    (checks.ASGI, "persistent 60 s under ASGI", {"conn_max_age": 60}, {"server": ASGI}, W),
    (checks.ASGI, "persistent forever under ASGI", {"conn_max_age": None}, {"server": ASGI}, W),
    (checks.ASGI, "CONN_MAX_AGE 0 under ASGI", {}, {"server": ASGI}, None),
    (checks.ASGI, "persistent under WSGI", {"conn_max_age": 60}, {}, None),
    (checks.CURSORS, "transaction pooling", {"disable_server_side_cursors": False}, {}, C),
    (checks.CURSORS, "statement pooling", {"disable_server_side_cursors": False}, {"mode": STATEMENT}, C),
    (checks.CURSORS, "session pooling", {"disable_server_side_cursors": False}, {"mode": SESSION}, None),
    (checks.CURSORS, "disabled", {}, {}, None),
    (
        checks.CURSORS,
        "not through PgBouncer",
        {"disable_server_side_cursors": False, "host": "10.0.0.9", "port": 5432},
        {},
        None,
    ),
    (checks.HEALTH, "60 s without checks", {"conn_max_age": 60}, {}, W),
    (checks.HEALTH, "forever without checks", {"conn_max_age": None}, {}, W),
    (checks.HEALTH, "60 s with checks", {"conn_max_age": 60, "conn_health_checks": True}, {}, None),
    (checks.HEALTH, "not persistent", {"conn_max_age": 0}, {}, None),
    (checks.NATIVE_POOL, "pool True", {"options": {"connect_timeout": 5, "pool": True}}, {}, W),
    (checks.NATIVE_POOL, "pool dict", {"options": {"connect_timeout": 5, "pool": {"max_size": 8}}}, {}, W),
    (checks.NATIVE_POOL, "pool False", {"options": {"connect_timeout": 5, "pool": False}}, {}, None),
    (
        checks.NATIVE_POOL,
        "pool straight to the database",
        {"options": {"connect_timeout": 5, "pool": True}, "host": "10.0.0.9", "port": 5432},
        {},
        None,
    ),
    (checks.BYPASS, "database host, port 5432", {"host": "10.0.0.9", "port": 5432}, {}, W),
    (checks.BYPASS, "database host, empty port", {"host": "10.0.0.9", "port": None}, {}, W),
    (checks.BYPASS, "another host", {"host": "10.0.0.7", "port": 5432}, {}, None),
    (checks.BYPASS, "database host, other port", {"host": "10.0.0.9", "port": 5433}, {}, None),
    (checks.BYPASS, "through PgBouncer", {}, {}, None),
    (checks.CONNECT_TIMEOUT, "no OPTIONS", {"options": {}}, {}, W),
    (checks.CONNECT_TIMEOUT, "0 means forever", {"options": {"connect_timeout": 0}}, {}, W),
    (checks.CONNECT_TIMEOUT, "unreadable", {"options": {"connect_timeout": "soon"}}, {}, W),
    (checks.CONNECT_TIMEOUT, "1 s", {"options": {"connect_timeout": 1}}, {}, None),
    (checks.CONNECT_TIMEOUT, "string 10", {"options": {"connect_timeout": "10"}}, {}, None),
    (checks.ATOMIC, "transaction pooling", {"atomic_requests": True}, {}, W),
    (checks.ATOMIC, "statement pooling", {"atomic_requests": True}, {"mode": STATEMENT}, C),
    (checks.ATOMIC, "session pooling", {"atomic_requests": True}, {"mode": SESSION}, None),
    (checks.ATOMIC, "off", {"atomic_requests": False}, {}, None),
    # prepared statements: PgBouncers not read here (the live cases are PREPARED_CASES below).
    (checks.PREPARED, "prepare_threshold, PgBouncer not read", {"options": {"prepare_threshold": 5}}, {}, W),
    (checks.PREPARED, "Django's default", {}, {}, None),
    (
        checks.OPTIONS,
        "statement_timeout, no live config",
        {"options": {"connect_timeout": 5, "options": "-c statement_timeout=5000"}},
        {},
        W,
    ),
    (
        checks.OPTIONS,
        "--lock_timeout form",
        {"options": {"connect_timeout": 5, "options": "--lock_timeout=1s"}},
        {},
        W,
    ),
    (
        checks.OPTIONS,
        "tracked parameter only",
        {"options": {"connect_timeout": 5, "options": "-c timezone=UTC"}},
        {},
        None,
    ),
    (
        checks.OPTIONS,
        "straight to the database",
        {"options": {"options": "-c statement_timeout=5000"}, "host": "10.0.0.9", "port": 5432},
        {},
        None,
    ),
]


@pytest.mark.parametrize(
    ("fid", "alias_changes", "topo", "expected"),
    [(c[0], c[2], c[3], c[4]) for c in CASES],
    ids=[f"{c[0].split('.')[1]}: {c[1]}" for c in CASES],
)
def test_condition(
    fid: str, alias_changes: dict[str, Any], topo: dict[str, Any], expected: Severity | None
) -> None:
    assert _severity(_run(replace(GOOD, **alias_changes), _topology(**topo)), fid) is expected


def test_every_id_has_a_positive_and_a_negative_case() -> None:
    for info in checks.CATALOG:
        if info.id == "django.unreachable":  # per node: test_node_settings_* below
            continue
        if info.id == checks.ADMISSION:  # per node and MIDDLEWARE: test_checks_django_admission.py
            continue
        outcomes = {c[4] is None for c in CASES if c[0] == info.id}
        assert outcomes == {True, False}, info.id


def test_healthy_alias_has_no_finding_even_under_asgi() -> None:
    assert _run(GOOD, _topology(server=ASGI)) == []


def test_only_postgresql_aliases_are_checked() -> None:
    sqlite = replace(GOOD, engine="django.db.backends.sqlite3", conn_max_age=None, options={})
    assert _run(sqlite, _topology(server=ASGI)) == []


def test_no_profile_no_finding() -> None:
    assert checks.run(Snapshot(topology=_topology(), plan=None)) == []


def test_target_summary_evidence_and_remedy() -> None:
    found = _run(replace(GOOD, disable_server_side_cursors=False))
    (f,) = found
    assert f.target == "django:shop.settings:default"
    assert "DISABLE_SERVER_SIDE_CURSORS" in f.summary and "\n" not in f.summary
    assert f.evidence["pool_modes"] == ["transaction"]
    assert f.remedy == "set DISABLE_SERVER_SIDE_CURSORS = True on this alias"


def test_native_pool_demand_is_processes_times_max_size() -> None:
    alias = replace(GOOD, options={"connect_timeout": 5, "pool": {"min_size": 2, "max_size": 8}})
    (f,) = _run(alias, _topology(nodes=3, workers=4))
    assert f.evidence["processes"] == 12
    assert f.evidence["pool_max_size"] == 8
    assert f.evidence["demand"] == 96
    assert f.evidence["planned_client_demand"] == 12  # wsgi_sync: one connection per worker
    assert "96 client connections (12 processes x 8), more than the 12" in f.summary
    (default,) = _run(replace(GOOD, options={"connect_timeout": 5, "pool": True}), _topology(nodes=1))
    assert default.evidence["pool_max_size"] == 4  # psycopg_pool's default size


def _state(host: str, **config: str) -> PgBouncerState:
    return PgBouncerState(host, f"{host}:6432", "1.18.0", config, (), (), (), ())


@pytest.mark.parametrize(
    ("ignored", "expected", "words"),
    [
        ("extra_float_digits", C, "refuses the connection"),
        ("extra_float_digits, options", W, "drops them silently"),
        ("statement_timeout", W, "drops them silently"),
    ],
)
def test_startup_options_with_live_config(ignored: str, expected: Severity, words: str) -> None:
    alias = replace(GOOD, options={"connect_timeout": 5, "options": "-c statement_timeout=5000"})
    states = tuple(_state(h, ignore_startup_parameters=ignored) for h in ("pgb1", "pgb2"))
    (f,) = _run(alias, pgbouncer=states)
    assert f.severity is expected
    assert words in f.summary
    assert "ALTER ROLE shop SET statement_timeout" in f.remedy


def test_startup_options_tracked_through_track_extra_parameters() -> None:
    alias = replace(GOOD, options={"connect_timeout": 5, "options": "-c search_path=app"})
    states = (_state("pgb1", track_extra_parameters="search_path"),)
    assert _run(alias, pgbouncer=states) == []
    assert _severity(_run(alias), checks.OPTIONS) is W


def test_colocated_pgbouncer_on_loopback() -> None:
    # app1 and app2 each run their own PgBouncer in session mode; a central one on the same port
    # pools per transaction. An app on 127.0.0.1 talks to its own, so no transaction-pooling finding.
    local = tuple(
        PgBouncerHost(n, ("shop",), ("shop",), pool_mode=SESSION, listen_addr="127.0.0.1")
        for n in ("app1", "app2")
    )
    central = PgBouncerHost("pgb9", ("shop",), ("shop",), listen_addr="10.0.0.5")
    topo = Topology(DatabaseCapacity(100, 4), (*local, central), (AppNode("app1"), AppNode("app2")))
    for host in ("127.0.0.1", "localhost", "", "/var/run/postgresql"):
        alias = replace(GOOD, host=host, disable_server_side_cursors=False)
        assert [p.name for p in route(alias, topo).pgbouncers] == ["app1", "app2"], host
        assert _run(alias, topo) == []


def test_loopback_matches_any_pgbouncer_port_when_none_is_colocated() -> None:
    alias = replace(GOOD, host="localhost", disable_server_side_cursors=False)
    assert _severity(_run(alias), checks.CURSORS) is C
    other_port = replace(alias, port=6543)
    assert not route(other_port, _topology()).through_pgbouncer


def test_pgbouncer_by_inventory_name_and_multi_host() -> None:
    topo = _topology()
    assert [p.name for p in route(replace(GOOD, host="PGB2"), topo).pgbouncers] == ["pgb2"]
    both = route(replace(GOOD, host="10.0.0.5,pgb2"), topo)
    assert [p.name for p in both.pgbouncers] == ["pgb1", "pgb2"]


def test_loopback_database_is_bypassed_by_loopback_alias() -> None:
    topo = replace(_topology(), database=DatabaseCapacity(100, 4, host="127.0.0.1"))
    alias = replace(GOOD, host="localhost", port=5432)
    assert _severity(_run(alias, topo), checks.BYPASS) is W


def test_catalog_ids_are_documented() -> None:
    text = "".join(p.read_text() for p in DOCS if p.exists())
    for info in checks.CATALOG:
        assert info.id.startswith("django.")
        assert f"`{info.id}`" in text, info.id


def _nodes_snapshot(profiles: dict[str, DjangoProfile], statuses: tuple[TargetStatus, ...] = ()) -> Snapshot:
    return Snapshot(topology=_topology(), plan=None, django_nodes=profiles, targets=statuses)


def test_node_settings_that_cannot_be_read_are_unknown() -> None:
    bad = TargetStatus("django:app-2", "django", "app-2:demo.settings", False, 0.4, "error", "no module")
    good = TargetStatus("django:app-1", "django", "app-1:demo.settings", True, 0.3)
    found = checks.run(_nodes_snapshot({}, (good, bad)))
    assert [(f.id, f.severity, f.target) for f in found] == [
        ("django.unreachable", Severity.UNKNOWN, "django@app-2:demo.settings")
    ]
    assert checks.run(_nodes_snapshot({}, (good,))) == []


def test_nodes_with_the_same_settings_report_a_finding_once() -> None:
    profile = DjangoProfile("shop.settings", "5.2", (replace(GOOD, conn_max_age=None),), ())
    one = checks.run(Snapshot(topology=_topology(server=ASGI), plan=None, django=profile))
    both = checks.run(
        Snapshot(topology=_topology(server=ASGI), plan=None, django_nodes={"a": profile, "b": profile})
    )
    assert one and both == one


def _pgb(name: str, version: str, max_prepared: str | None) -> PgBouncerState:
    config = {"pool_mode": "transaction"}
    if max_prepared is not None:
        config["max_prepared_statements"] = max_prepared
    return PgBouncerState(name, f"{name}:6432", f"PgBouncer {version}", config, (), (), (), ())


PREPARE = {"connect_timeout": 5, "prepare_threshold": 5}
BINDING = {"connect_timeout": 5, "server_side_binding": True}
BOTH_OK = (_pgb("pgb1", "1.24.1", "200"), _pgb("pgb2", "1.26.1", "100"))

PREPARED_CASES: list[tuple[str, dict[str, Any], PoolMode, tuple[PgBouncerState, ...], Severity | None]] = [
    # (case, OPTIONS, pool mode, live PgBouncers, expected severity or None)
    (
        "prepare_threshold 5, 1.18 (no max_prepared_statements)",
        PREPARE,
        TX,
        (_pgb("pgb1", "1.18.0", None),),
        C,
    ),
    (
        "prepare_threshold 5, 1.24 with max_prepared_statements 0",
        PREPARE,
        TX,
        (_pgb("pgb1", "1.24.1", "0"),),
        C,
    ),
    (
        "prepare_threshold 0 (prepare every query), 1.21 with 0",
        {"prepare_threshold": 0},
        TX,
        (_pgb("pgb2", "1.21.0", "0"),),
        C,
    ),
    (
        "server_side_binding, 1.20 with the setting somehow 200",
        BINDING,
        TX,
        (_pgb("pgb1", "1.20.0", "200"),),
        C,
    ),
    ("statement pooling counts too", PREPARE, STATEMENT, (_pgb("pgb1", "1.18.0", None),), C),
    ("one of two PgBouncers unsafe", PREPARE, TX, (BOTH_OK[0], _pgb("pgb2", "1.22.0", "0")), C),
    ("1.21+ with max_prepared_statements > 0 on both", PREPARE, TX, BOTH_OK, None),
    ("both flags, both PgBouncers track them", {**PREPARE, **BINDING}, TX, BOTH_OK, None),
    (
        "Django's default (no prepare_threshold)",
        {"connect_timeout": 5},
        TX,
        (_pgb("pgb1", "1.18.0", None),),
        None,
    ),
    ("prepare_threshold None", {"prepare_threshold": None}, TX, (_pgb("pgb1", "1.18.0", None),), None),
    ("server_side_binding False", {"server_side_binding": False}, TX, (_pgb("pgb1", "1.18.0", None),), None),
    ("session pooling keeps a server per client", PREPARE, SESSION, (_pgb("pgb1", "1.18.0", None),), None),
    ("PgBouncers not read (offline)", PREPARE, TX, (), W),
    ("unparsable version", PREPARE, TX, (_pgb("pgb1", "x", "200"), BOTH_OK[1]), C),
    ("max_prepared_statements not a number", PREPARE, TX, (_pgb("pgb1", "1.24.1", "lots"), BOTH_OK[1]), C),
]


@pytest.mark.parametrize(
    ("case", "options", "mode", "states", "expected"), PREPARED_CASES, ids=[c[0] for c in PREPARED_CASES]
)
def test_prepared_statements_with_transaction_pooling(
    case: str,
    options: dict[str, Any],
    mode: PoolMode,
    states: tuple[PgBouncerState, ...],
    expected: Severity | None,
) -> None:
    # Through both PgBouncers (libpq tries the hosts in turn): each one must track prepared statements.
    alias = replace(GOOD, options=options, host="10.0.0.5,10.0.0.6")
    found = _run(alias, _topology(mode=mode), pgbouncer=states)
    assert _severity(found, checks.PREPARED) is expected, case
    if expected is Severity.CRITICAL:
        (f,) = [f for f in found if f.id == checks.PREPARED]
        assert "does not exist" in f.summary and f.target == "django:shop.settings:default"
        assert f.evidence["pgbouncers"]


def test_prepared_statements_not_judged_for_an_alias_that_bypasses_pgbouncer() -> None:
    alias = replace(GOOD, options=PREPARE, host="10.0.0.9", port=5432)
    assert _severity(_run(alias, pgbouncer=(_pgb("pgb1", "1.18.0", None),)), checks.PREPARED) is None

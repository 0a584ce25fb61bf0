"""Sizing: table-driven cases at the edges, and invariants over wide random topologies."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolkit.domain.errors import SizingError
from toolkit.domain.models import (
    AppNode,
    DatabaseCapacity,
    PgBouncerHost,
    PoolMode,
    RedisHost,
    RedisProfile,
    ServerKind,
    SizingOverrides,
    Topology,
)
from toolkit.domain.sizing import active_target, plan, route_demand


def _topo(
    max_connections: int = 100,
    cores: int = 2,
    mode: PoolMode = PoolMode.TRANSACTION,
    processes: int = 1,
    databases: tuple[str, ...] = ("app",),
    users: tuple[str, ...] = ("app",),
    nodes: tuple[AppNode, ...] = (),
    overrides: SizingOverrides | None = None,
    hosts: int = 1,
    headroom: int = 0,
) -> Topology:
    pgbs = tuple(
        PgBouncerHost(
            f"pgb{i}",
            databases=databases,
            users=users,
            processes=processes,
            pool_mode=mode,
            overrides=overrides or SizingOverrides(),
        )
        for i in range(hosts)
    )
    return Topology(DatabaseCapacity(max_connections=max_connections, cores=cores), pgbs, nodes, (), headroom)


def _web(name: str = "web", workers: int = 4, threads: int = 4, hosts: tuple[str, ...] = ()) -> AppNode:
    return AppNode(name, ServerKind.WSGI_GTHREAD, workers=workers, threads=threads, pgbouncer_hosts=hosts)


# ---- the active target ---------------------------------------------------------------------------


def test_target_is_not_the_bare_core_formula() -> None:
    # FACTS: on 2 cores the bare formula (4) leaves 15-35% of throughput; pools of 16-32 were best.
    assert active_target(2, 0, 5.0) == 20
    assert active_target(2, 0, 5.0) > 2 * 2 + 0


def test_only_the_cores_the_database_gets_count() -> None:
    # Measured (bench/results/pool_sizing.md): db1 used 0.87-0.94 of 2 cores it shared with PgBouncer and
    # 200 pgbench clients; a plan for 2 whole cores (20) ran past the best pools (8-12) in p99.
    shared = Topology(
        database=DatabaseCapacity(max_connections=100, cores=2, cpu_share=0.5),
        pgbouncers=(PgBouncerHost("pgb", databases=("app",), users=("app",)),),
        app_nodes=(AppNode("web", ServerKind.WSGI_GTHREAD, workers=4, threads=50, pgbouncer_hosts=("pgb",)),),
    )
    own = replace(shared, database=replace(shared.database, cpu_share=1.0))
    assert plan(shared).budget.active_target == 10
    assert plan(shared).pgbouncer[0].value("default_pool_size") == 10
    assert plan(own).pgbouncer[0].value("default_pool_size") == 20
    assert active_target(2, 2, 1.0, cpu_share=0.25) == 3  # spindles are not the CPU's: they count whole


@pytest.mark.parametrize(
    ("cores", "spindles", "hold", "expected"), [(1, 0, 1.0, 2), (8, 2, 3.0, 54), (4, 0, 0.01, 1)]
)
def test_active_target_table(cores: int, spindles: int, hold: float, expected: int) -> None:
    assert active_target(cores, spindles, hold) == expected


# ---- table-driven plans --------------------------------------------------------------------------


def test_pool_is_capped_by_clients_that_can_use_it() -> None:
    p = plan(_topo(nodes=(_web(workers=2, threads=3, hosts=("pgb0",)),)))
    assert p.pgbouncer[0].value("default_pool_size") == 6
    assert p.pgbouncer[0].client_demand == 6


def test_pool_is_the_target_share_when_demand_is_larger() -> None:
    p = plan(_topo(nodes=(_web(workers=10, threads=10),)))
    assert p.pgbouncer[0].value("default_pool_size") == 20
    assert p.pgbouncer[0].value("reserve_pool_size") == 5
    assert p.pgbouncer[0].value("max_client_conn") == 100 + 5


def test_target_is_shared_by_processes_and_pools() -> None:
    # 2 hosts x 2 processes x (2 db x 1 user) = 8 (process, pool) pairs share the target 20.
    p = plan(_topo(hosts=2, processes=2, databases=("a", "b"), nodes=(_web(workers=50, threads=4),)))
    assert {pg.value("default_pool_size") for pg in p.pgbouncer} == {3}
    assert p.budget.pgbouncer_server_connections == 8 * (3 + 1)


def test_budget_counts_reserved_and_bypass_slots() -> None:
    p = plan(_topo())
    assert p.budget.usable == 100 - 3 - 0 - 6
    assert p.budget.spare == p.budget.usable - p.budget.pgbouncer_server_connections


def test_many_pools_shrink_to_the_budget() -> None:
    # 20 processes x 4 pools = 80 pairs over 91 usable slots: 1 each, no reserve left.
    p = plan(_topo(processes=20, databases=("a", "b"), users=("u", "v"), nodes=(_web(workers=100),)))
    assert p.pgbouncer[0].value("default_pool_size") == 1
    assert p.pgbouncer[0].value("reserve_pool_size") == 0


def test_too_many_pools_is_infeasible_and_says_what_to_change() -> None:
    with pytest.raises(
        SizingError, match=r"92 \(process, pool\) pairs .* only 91 .* raise database_max_connections"
    ):
        plan(_topo(processes=23, databases=("a", "b"), users=("u", "v")))


def test_no_usable_slot_is_infeasible() -> None:
    with pytest.raises(SizingError, match=r"max_connections 9 .* leaves 0 slots"):
        plan(_topo(max_connections=9))


def test_session_mode_needs_a_connection_per_client() -> None:
    p = plan(_topo(mode=PoolMode.SESSION, nodes=(_web(workers=5, threads=6),)))
    assert p.pgbouncer[0].value("default_pool_size") == 30


def test_session_mode_beyond_the_budget_is_infeasible() -> None:
    with pytest.raises(
        SizingError, match=r"session mode .* 200 clients per process, but the budget allows 91"
    ):
        plan(_topo(mode=PoolMode.SESSION, nodes=(_web(workers=50, threads=4),)))


def test_session_mode_override_below_demand_is_infeasible() -> None:
    ov = SizingOverrides(default_pool_size=10)
    with pytest.raises(SizingError, match=r"session mode needs a pool of at least 30"):
        plan(_topo(mode=PoolMode.SESSION, nodes=(_web(workers=5, threads=6),), overrides=ov))


def test_override_pool_beyond_budget_is_refused() -> None:
    # autobase's default pool of 100 against max_connections 100.
    with pytest.raises(SizingError, match=r"pgbouncer_default_pool_size 100 exceeds the budget \(91 usable"):
        plan(_topo(overrides=SizingOverrides(default_pool_size=100)))


def test_override_reserve_beyond_budget_is_refused() -> None:
    with pytest.raises(SizingError, match=r"default_pool_size 80 \+ pgbouncer_reserve_pool_size 20"):
        plan(_topo(overrides=SizingOverrides(default_pool_size=80, reserve_pool_size=20)))


def test_override_max_client_conn_below_demand_is_refused() -> None:
    ov = SizingOverrides(max_client_conn=10)
    with pytest.raises(SizingError, match=r"pgbouncer_max_client_conn 10 is below the 16 clients .* = 21"):
        plan(_topo(nodes=(_web(),), overrides=ov))


def test_overrides_within_budget_are_kept() -> None:
    ov = SizingOverrides(default_pool_size=30, reserve_pool_size=0, min_pool_size=2, max_client_conn=500)
    s = plan(_topo(nodes=(_web(),), overrides=ov)).pgbouncer[0]
    assert (s.value("default_pool_size"), s.value("reserve_pool_size")) == (30, 0)
    assert (s.value("min_pool_size"), s.value("max_client_conn")) == (2, 500)


def test_min_pool_override_above_pool_is_refused() -> None:
    with pytest.raises(SizingError, match="pgbouncer_min_pool_size 50 exceeds default_pool_size 20"):
        plan(_topo(overrides=SizingOverrides(min_pool_size=50)))


def test_n_plus_one_tier_spreads_demand_over_the_survivors() -> None:
    node = _web(workers=10, threads=3)  # 30 clients over 3 hosts, one may be down: 15 each
    routed = route_demand(_topo(hosts=3, headroom=1, nodes=(node,)))
    assert routed == {"pgb0": 15, "pgb1": 15, "pgb2": 15}


def test_colocated_pgbouncer_needs_no_headroom() -> None:
    nodes = (_web("a", hosts=("pgb0",)), _web("b", hosts=("pgb1",)))
    assert route_demand(_topo(hosts=2, headroom=1, nodes=nodes)) == {"pgb0": 16, "pgb1": 16}


def test_headroom_that_leaves_no_host_is_infeasible() -> None:
    with pytest.raises(
        SizingError, match="spreads over 2 PgBouncer hosts, and with pgbouncer_failover_headroom 2"
    ):
        plan(_topo(hosts=2, headroom=2, nodes=(_web(),)))


def test_unknown_pgbouncer_host_is_refused() -> None:
    with pytest.raises(SizingError, match="nope"):
        plan(_topo(nodes=(_web(hosts=("nope",)),)))


def test_fd_limit_covers_clients_and_servers() -> None:
    s = plan(_topo(nodes=(_web(workers=500, threads=4),))).pgbouncer[0]
    assert s.nofile.value == 2005 + 25 + 64


def test_redis_profiles() -> None:
    nodes = (_web(workers=2, threads=5),)
    topo = Topology(
        DatabaseCapacity(max_connections=100, cores=2),
        _topo().pgbouncers,
        nodes,
        (
            RedisHost("cache", host_memory_mb=8192, memory_share=0.5),
            RedisHost("broker", RedisProfile.BROKER, maxmemory_mb=64),
            RedisHost("unknown"),
        ),
    )
    cache, broker, unknown = plan(topo).redis
    assert (cache.maxclients.value, cache.maxmemory, cache.maxmemory_policy) == (
        30,
        4096 * 2**20,
        "allkeys-lru",
    )
    assert (broker.maxmemory, broker.maxmemory_policy) == (64 * 2**20, "noeviction")
    assert unknown.maxmemory is None
    assert "redis_host_memory_mb" in unknown.maxmemory_reason


def test_plan_dict_is_keyed_by_host_and_carries_reasons() -> None:
    d = plan(_topo(nodes=(_web(),))).to_dict()
    assert d["schema"] == "toolkit.plan/v1"
    entry = d["pgbouncer"]["pgb0"]
    assert set(entry["settings"]) <= set(entry["reasons"])
    assert all(isinstance(r, str) and r for r in entry["reasons"].values())


# ---- invariants over wide random input -----------------------------------------------------------

nodes_st = st.lists(
    st.builds(
        AppNode,
        name=st.just("n"),
        server=st.sampled_from(ServerKind),
        workers=st.integers(0, 64),
        threads=st.integers(1, 32),
        celery_concurrency=st.integers(0, 32),
        extra_clients=st.integers(0, 10),
    ),
    max_size=8,
)


@st.composite
def topologies(draw: st.DrawFn) -> Topology:
    n_hosts = draw(st.integers(1, 5))
    names = [f"h{i}" for i in range(n_hosts)]
    mode = draw(st.sampled_from(PoolMode))
    pgbs = tuple(
        PgBouncerHost(
            name,
            databases=tuple(f"d{i}" for i in range(draw(st.integers(1, 3)))),
            users=tuple(f"u{i}" for i in range(draw(st.integers(1, 3)))),
            processes=draw(st.integers(1, 6)),
            pool_mode=mode,
            admin_slots=draw(st.integers(0, 10)),
        )
        for name in names
    )
    nodes = tuple(
        AppNode(
            f"app{i}",
            n.server,
            n.workers,
            n.threads,
            n.celery_concurrency,
            n.extra_clients,
            pgbouncer_hosts=tuple(draw(st.lists(st.sampled_from(names), unique=True, max_size=n_hosts))),
        )
        for i, n in enumerate(draw(nodes_st))
    )
    db = DatabaseCapacity(
        max_connections=draw(st.integers(1, 3000)),
        cores=draw(st.integers(1, 96)),
        superuser_reserved_connections=draw(st.integers(0, 10)),
        reserved_connections=draw(st.integers(0, 10)),
        bypass_connections=(("admin", draw(st.integers(0, 10))), ("cron", draw(st.integers(0, 10)))),
        spindles=draw(st.integers(0, 8)),
        hold_factor=draw(st.floats(0.1, 20.0)),
    )
    return Topology(db, pgbs, nodes, (), draw(st.integers(0, 2)))


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(topologies())
def test_invariants_hold_or_sizing_says_why(topo: Topology) -> None:
    db = topo.database
    try:
        result = plan(topo)
    except SizingError as exc:
        assert str(exc)  # always a message naming the numbers
        return
    # Every server connection PgBouncer can open, plus bypass and reserved slots, fits max_connections.
    total = sum(p.server_connections for p in result.pgbouncer)
    assert total + db.bypass_total + db.superuser_reserved_connections + db.reserved_connections <= (
        db.max_connections
    )
    routed = route_demand(topo)
    for host, p in zip(topo.pgbouncers, result.pgbouncer, strict=True):
        per_process = math.ceil(routed[host.name] / host.processes)
        pool = p.value("default_pool_size")
        assert p.value("max_client_conn") >= per_process + host.admin_slots
        assert pool >= 1
        assert 0 <= p.value("min_pool_size") <= pool
        assert p.value("reserve_pool_size") >= 0
        assert p.value("max_db_connections") >= pool
        assert p.value("max_user_connections") >= pool
        assert p.nofile.value >= p.value("max_client_conn") + host.pools * pool
        if host.pool_mode is PoolMode.SESSION:
            assert pool >= per_process  # a session pool smaller than its demand would hang clients


@settings(max_examples=300)
@given(topologies())
def test_feasible_topologies_are_not_refused(topo: Topology) -> None:
    """Sizing refuses only with cause: check the certificate of every refusal."""
    db = topo.database
    usable = (
        db.max_connections - db.superuser_reserved_connections - db.reserved_connections - db.bypass_total
    )
    slots = sum(p.processes * p.pools for p in topo.pgbouncers)
    try:
        plan(topo)
    except SizingError:
        cap = usable // slots if usable >= 1 else 0
        every_host = len(topo.pgbouncers)
        headroom_bad = any(
            1 < len(n.pgbouncer_hosts or range(every_host)) <= topo.failover_headroom for n in topo.app_nodes
        )
        session_bad = False
        if cap >= 1 and not headroom_bad:
            routed = route_demand(topo)
            session_bad = any(
                h.pool_mode is PoolMode.SESSION and math.ceil(routed[h.name] / h.processes) > cap
                for h in topo.pgbouncers
            )
        assert usable < 1 or cap < 1 or headroom_bad or session_bad


@given(nodes_st, st.integers(1, 6), st.integers(0, 3))
def test_tier_demand_fits_with_headroom_hosts_down(nodes: list[AppNode], hosts: int, headroom: int) -> None:
    names = tuple(f"h{i}" for i in range(hosts))
    topo = _topo(hosts=hosts, headroom=headroom)
    topo = Topology(
        topo.database,
        tuple(PgBouncerHost(n, ("d",), ("u",)) for n in names),
        tuple(
            AppNode(f"a{i}", n.server, n.workers, n.threads, n.celery_concurrency, n.extra_clients, names)
            for i, n in enumerate(nodes)
        ),
        (),
        headroom,
    )
    try:
        routed = route_demand(topo)
    except SizingError:
        assert 1 < hosts <= headroom
        assert nodes
        return
    survivors = hosts - headroom if hosts > 1 else 1
    total = sum(n.demand for n in topo.app_nodes)
    # Any `survivors` hosts together still accept every client.
    assert sum(sorted(routed.values())[:survivors]) >= total

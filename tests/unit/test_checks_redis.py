"""redis.* checks on hand-built snapshots: a cache (cache1) and a broker (broker1), each id just
inside and past its condition. The plan gives both 16 app clients."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.unit import snapshots as s
from tests.unit.snapshots import C, Case, U, W
from toolkit.domain.checks import redis

P = "redis."
UNREACHABLE, AUTH, MAXMEMORY = P + "unreachable", P + "auth_disabled", P + "maxmemory_unset"
POLICY, MAXCLIENTS = P + "eviction_policy_not_for_cache", P + "maxclients_below_demand"
REJECTED = P + "rejected_connections"
EVICTIONS, HIT_RATIO, NO_TTL = P + "evictions", P + "hit_ratio_low", P + "keys_without_ttl"
CACHE, BROKER = "redis@10.0.0.8:6379", "redis@10.0.0.7:6379"
FLUSH = "cache-flush-namespace"


def _redis(host: str = "cache1", info: dict[str, Any] | None = None, **changes: Any) -> s.Snapshot:
    config = changes.pop("config", None)
    state = s.redis_state(host, info, **changes)
    if config is not None:
        state = replace(state, config={**state.config, **config})
    return s.snapshot(redis=(state,))


def _hits(hits: int, misses: int, host: str = "cache1") -> s.Snapshot:
    return _redis(host, {"keyspace_hits": hits, "keyspace_misses": misses})


CASES = [
    # unreachable
    Case(UNREACHABLE, "read fine", s.snapshot(targets=(s.target("redis"),)), None),
    Case(
        UNREACHABLE,
        "refused",
        s.snapshot(targets=(s.target("redis", ok=False),)),
        U,
        CACHE,
        {"cause": "connection refused", "elapsed_s": 0.01},
        None,
        "redis@10.0.0.8:6379: connection refused",
    ),
    # auth_disabled
    Case(AUTH, "a PING without credentials is refused", _redis(), None),
    Case(
        AUTH,
        "a PING without credentials is answered",
        _redis(anonymous_ok=True),
        C,
        CACHE,
        {"default_user": "on, nopass"},
        None,
        "Redis accepts commands without a password",
    ),
    # maxmemory_unset
    Case(MAXMEMORY, "128 MiB", _redis(), None),
    Case(MAXMEMORY, "one byte", _redis(config={"maxmemory": "1"}), None),
    Case(
        MAXMEMORY,
        "maxmemory 0",
        _redis(config={"maxmemory": "0"}),
        W,
        CACHE,
        {"maxmemory": 0, "maxmemory-policy": "allkeys-lru"},
        None,
        "maxmemory is 0",
    ),
    # eviction_policy_not_for_cache: a cache must evict any key, a broker none.
    Case(POLICY, "cache, allkeys-lru", _redis(), None),
    Case(POLICY, "cache, allkeys-lfu", _redis(config={"maxmemory-policy": "allkeys-lfu"}), None),
    Case(
        POLICY,
        "cache, noeviction",
        _redis(config={"maxmemory-policy": "noeviction"}),
        W,
        CACHE,
        {"maxmemory-policy": "noeviction", "profile": "cache"},
        None,
        "a cache with maxmemory-policy noeviction",
    ),
    Case(
        POLICY,
        "cache, volatile-lru",
        _redis(config={"maxmemory-policy": "volatile-lru"}),
        W,
        CACHE,
        {"maxmemory-policy": "volatile-lru"},
    ),
    Case(POLICY, "broker, noeviction", _redis("broker1"), None),
    Case(
        POLICY,
        "broker, allkeys-lru",
        _redis("broker1", config={"maxmemory-policy": "allkeys-lru"}),
        C,
        BROKER,
        {"maxmemory-policy": "allkeys-lru", "profile": "broker"},
        None,
        "a broker with maxmemory-policy allkeys-lru: queued messages can be evicted",
    ),
    # maxclients_below_demand: 16 app clients planned.
    Case(MAXCLIENTS, "the plan's 42", _redis(), None),
    Case(MAXCLIENTS, "exactly the demand", _redis(config={"maxclients": "16"}), None),
    Case(
        MAXCLIENTS,
        "one below the demand",
        _redis(config={"maxclients": "15"}),
        C,
        CACHE,
        {"maxclients": 15, "demand": 16},
        None,
        "maxclients 15 is below the 16 app clients",
    ),
    # rejected_connections
    Case(REJECTED, "none", _redis(), None),
    Case(
        REJECTED,
        "one",
        _redis(info={"rejected_connections": 1}),
        W,
        CACHE,
        {"rejected_connections": 1, "connected_clients": 12},
        None,
        "1 connection(s) refused at maxclients 42",
    ),
    # evictions
    Case(EVICTIONS, "none", _redis(), None),
    Case(
        EVICTIONS,
        "a cache evicted one key",
        _redis(info={"evicted_keys": 1}),
        W,
        CACHE,
        {"evicted_keys": 1, "used_memory": 1048576},
        FLUSH,
        "1 key(s) evicted since start",
    ),
    Case(
        EVICTIONS,
        "a broker evicted one key",
        _redis("broker1", info={"evicted_keys": 1}),
        C,
        BROKER,
        {"evicted_keys": 1},
        FLUSH,
    ),
    # hit_ratio_low: a cache below 80 % hits over at least 1000 lookups.
    Case(HIT_RATIO, "80 % of 1000", _hits(800, 200), None),
    Case(HIT_RATIO, "no hit in 999 lookups", _hits(0, 999), None),
    Case(
        HIT_RATIO,
        "79.9 % of 1000",
        _hits(799, 201),
        W,
        CACHE,
        {"keyspace_hits": 799, "keyspace_misses": 201},
        None,
        "over 1000 lookups",
    ),
    Case(HIT_RATIO, "no hit in 1000 lookups", _hits(0, 1000), W, CACHE, {"keyspace_misses": 1000}),
    Case(HIT_RATIO, "a broker's ratio is no concern", _hits(0, 5000, host="broker1"), None),
    # keys_without_ttl
    Case(NO_TTL, "every sampled key expires", _redis(sampled_keys=50, sample_prefix="shop:"), None),
    Case(
        NO_TTL,
        "3 of 50 never expire",
        _redis(sampled_keys=50, keys_without_ttl=3, sample_prefix="shop:"),
        W,
        CACHE,
        {"sampled": 50, "without_ttl": 3, "prefix": "shop:"},
        FLUSH,
        "3 of 50 sampled keys under 'shop:' never expire",
    ),
    Case(NO_TTL, "a broker's keys", _redis("broker1", sampled_keys=50, keys_without_ttl=50), None),
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_redis_case(case: Case) -> None:
    s.verify(redis.run(case.snap), case)


def test_every_id_has_a_reporting_and_a_quiet_case() -> None:
    assert s.uncovered(redis.CATALOG, CASES) == []


def test_healthy_cache_and_broker_have_no_finding() -> None:
    snap = s.snapshot(targets=(s.target("redis"),), redis=(s.redis_state("cache1"), s.redis_state("broker1")))
    assert redis.run(snap) == []


def test_an_instance_the_inventory_does_not_know_is_checked_as_a_cache_without_a_plan() -> None:
    state = s.redis_state("stranger", config={"maxmemory": "0", "maxmemory-policy": "noeviction"})
    found = redis.run(s.snapshot(redis=(state,)))
    assert sorted(f.id for f in found) == sorted([MAXMEMORY, POLICY])


def test_unparsable_numbers_count_as_zero() -> None:
    snap = _redis(info={"rejected_connections": "n/a"}, config={"maxclients": "lots", "maxmemory": "?"})
    assert [f.id for f in redis.run(snap)] == [MAXMEMORY]


def test_catalogue_runbooks_match_the_findings() -> None:
    catalog = {info.id: info.runbook for info in redis.CATALOG}
    for case in CASES:
        for f in redis.run(case.snap):
            assert f.runbook == catalog[f.id], (str(case), f.id)


def test_documented() -> None:
    assert sorted(s.documented_ids("redis")) == sorted(i.id for i in redis.CATALOG)

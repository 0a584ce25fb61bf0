"""redis.* checks on hand-built snapshots: a cache (cache1) and a broker (broker1), each id just
inside and past its condition. The plan gives both 16 app clients."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from tests.unit import snapshots as s
from tests.unit.snapshots import C, Case, U, W
from toolkit.domain.checks import redis

P = "redis."
UNREACHABLE, AUTH, MAXMEMORY = P + "unreachable", P + "auth_disabled", P + "maxmemory_unset"
POLICY, MAXCLIENTS = P + "eviction_policy_not_for_cache", P + "maxclients_below_demand"
REJECTED, ABOVE = P + "rejected_connections", P + "clients_above_demand"
EVICTIONS, HIT_RATIO, NO_TTL = P + "evictions", P + "hit_ratio_low", P + "keys_without_ttl"
CACHE, BROKER = "redis@10.0.0.8:6379", "redis@10.0.0.7:6379"
VERSION = P + "version_outdated"
FLUSH = "cache-flush-namespace"


def _redis(host: str = "cache1", info: dict[str, Any] | None = None, **changes: Any) -> s.Snapshot:
    config = changes.pop("config", None)
    state = s.redis_state(host, info, **changes)
    if config is not None:
        state = replace(state, config={**state.config, **config})
    return s.snapshot(redis=(state,))


_VALKEY = {"redis_version": "7.2.4", "valkey_version": "8.1.1"}


def _scripting(version: str, rules: str) -> s.Snapshot:
    return replace(_redis(info={"redis_version": version}), redis_app_rules={"cache1": rules})


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
        "redis-raise-maxclients",
        "maxclients 15 is below the 16 app clients",
    ),
    # rejected_connections: counted since start; reported only while clients are near maxclients (90%).
    Case(REJECTED, "none", _redis(), None),
    Case(REJECTED, "refused once, 12 of 42 in use now", _redis(info={"rejected_connections": 1}), None),
    Case(
        REJECTED,
        "refused, 37 of 42 in use (88%)",
        _redis(info={"rejected_connections": 5, "connected_clients": 37}),
        None,
    ),
    Case(
        REJECTED,
        "refused, 38 of 42 in use (90%)",
        _redis(info={"rejected_connections": 5, "connected_clients": 38}),
        W,
        CACHE,
        {"rejected_connections": 5, "connected_clients": 38, "maxclients": 42},
        "redis-kill-idle-clients",
        "38 of maxclients 42 in use, 5 connection(s) refused since start",
    ),
    # clients_above_demand: 16 app clients planned (web1 at 10.0.1.1).
    Case(ABOVE, "16 by CLIENT LIST", _redis(clients_by_ip={"10.0.1.1": 16}), None),
    Case(ABOVE, "17 connected, doctor's own among them", _redis(info={"connected_clients": 17}), None),
    Case(
        ABOVE,
        "18 connected without CLIENT LIST",
        _redis(info={"connected_clients": 18}),
        W,
        CACHE,
        {"app_clients": 17, "demand": 16, "by_node": {}},
        "redis-kill-idle-clients",
        "17 app connections, above the plan's 16",
    ),
    Case(
        ABOVE,
        "17 by CLIENT LIST, named by node",
        _redis(clients_by_ip={"10.0.1.1": 12, "10.0.9.9": 3, "10.0.9.8": 1, "10.0.9.7": 1}),
        W,
        CACHE,
        {"app_clients": 17, "demand": 16, "by_node": {"web1": 12, "10.0.9.9": 3, "10.0.9.7": 1}},
        "redis-kill-idle-clients",
        "17 app connections, above the plan's 16 (most: web1 12, 10.0.9.9 3, 10.0.9.7 1)",
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
    # version_outdated: CVE-2025-49844 (fixed in 6.2.20, 7.2.11, 7.4.6, 8.0.4, 8.2.2; none for 7.0).
    Case(VERSION, "7.2.11 carries the fix", _redis(info={"redis_version": "7.2.11"}), None),
    Case(VERSION, "8.2.2 carries the fix", _redis(info={"redis_version": "8.2.2"}), None),
    Case(VERSION, "6.2.20 carries the fix", _redis(info={"redis_version": "6.2.20"}), None),
    Case(VERSION, "no version in INFO", _redis(), None),
    Case(VERSION, "Valkey (a compatibility version)", _redis(info=_VALKEY), None),
    Case(
        VERSION,
        "Debian 12's 7.0.15, role's default rules: no scripting for the app user",
        _redis(info={"redis_version": "7.0.15"}),
        W,
        CACHE,
        {"version": "7.0.15", "app_user_scripting": False, "rules_from": "the redis role's default"},
        None,
        "lacks the fix for CVE-2025-49844",
    ),
    Case(VERSION, "7.4.5 with +@scripting", _scripting("7.4.5", "+@read +@write +@scripting"), C, CACHE),
    Case(VERSION, "8.0.3 with +eval", _scripting("8.0.3", "+@read +eval"), C, CACHE),
    Case(VERSION, "7.0.15 with +@all", _scripting("7.0.15", "+@all -@dangerous"), C, CACHE),
    Case(VERSION, "+@slow holds EVAL too", _scripting("7.0.15", "+@read +@slow"), C, CACHE),
    Case(VERSION, "+@all -@scripting", _scripting("7.0.15", "+@all -@scripting"), W, CACHE),
    Case(
        VERSION,
        "acknowledged (Debian's 7.0.15-1~deb12u6 carries the fix)",
        replace(_scripting("7.0.15", "+@all"), acknowledged_cves={"cache1": frozenset({"CVE-2025-49844"})}),
        None,
    ),
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


def test_default_rules_are_the_roles() -> None:
    defaults = (Path(__file__).resolve().parents[2] / "roles" / "redis" / "defaults" / "main.yml").read_text()
    (line,) = [x for x in defaults.splitlines() if x.startswith("redis_app_command_rules:")]
    assert line.split(":", 1)[1].strip().strip('"') == redis.DEFAULT_APP_RULES


@pytest.mark.parametrize(
    ("rules", "allowed"),
    [
        ("", False),
        ("+@read +@write +@connection +@transaction -@dangerous", False),
        ("+@read +evalsha", True),
        ("+@read +fcall_ro", True),
        ("+eval -eval", False),
        ("allcommands", True),
        ("allcommands nocommands", False),
        ("+@all reset", False),
        ("+@SCRIPTING", True),
        ("+function|load", False),
    ],
)
def test_allows_scripting(rules: str, allowed: bool) -> None:
    assert redis.allows_scripting(rules) is allowed

"""Redis: reachable, protected, bounded in memory and clients, evicting only when it is a cache."""

from __future__ import annotations

from toolkit.domain import versions
from toolkit.domain.checks.base import CheckInfo, unreachable
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import RedisProfile
from toolkit.domain.numbers import as_int
from toolkit.domain.plan import RedisPlan
from toolkit.domain.snapshot import RedisState, Snapshot

AREA = "redis"
_P = "redis."
CATALOG = (
    CheckInfo(_P + "unreachable", "doctor could not read Redis"),
    CheckInfo(_P + "auth_disabled", "Redis answers without authentication"),
    CheckInfo(_P + "maxmemory_unset", "Redis may grow until the host runs out of memory"),
    CheckInfo(
        _P + "eviction_policy_not_for_cache", "the eviction policy does not fit the instance's profile"
    ),
    CheckInfo(
        _P + "maxclients_below_demand", "maxclients is below the app's clients", "redis-raise-maxclients"
    ),
    CheckInfo(
        _P + "clients_above_demand",
        "the app holds more Redis connections than the plan counts",
        "redis-kill-idle-clients",
    ),
    CheckInfo(
        _P + "rejected_connections",
        "Redis refused connections and is at maxclients now",
        "redis-kill-idle-clients",
    ),
    CheckInfo(_P + "evictions", "Redis has evicted keys", "cache-flush-namespace"),
    CheckInfo(_P + "hit_ratio_low", "most cache lookups miss"),
    CheckInfo(_P + "keys_without_ttl", "keys under the app prefix never expire", "cache-flush-namespace"),
    CheckInfo(_P + "version_outdated", "Redis carries a fixed CVE (the 2025 Lua use-after-free)"),
)
# The redis role's default redis_app_command_rules (roles/redis/defaults/main.yml; a test keeps them equal).
DEFAULT_APP_RULES = "+@read +@write +@connection +@transaction -@dangerous"
# Commands that run a script; in Redis 7 each is in the categories @scripting and @slow (COMMAND INFO).
_SCRIPT_COMMANDS = frozenset({"eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro"})
_SCRIPT_CATEGORIES = frozenset({"all", "scripting", "slow"})
HIT_RATIO_WARNING = 0.8
HIT_RATIO_MIN_LOOKUPS = 1000
# rejected_connections counts since Redis started: it is reported only while the clients are this close
# to maxclients, so one past flood is not reported forever (its rate is the metric's job).
NEAR_MAXCLIENTS = 0.9
TOP_NODES = 3


def run(snap: Snapshot) -> list[Finding]:
    """Return the redis.* findings."""
    out = unreachable(snap, "redis", "check the service and the ops user")
    profiles = {r.name: r.profile for r in snap.topology.redis}
    planned = {r.host: r for r in snap.plan.redis} if snap.plan else {}
    nodes: dict[str, list[str]] = {}
    for node in snap.topology.app_nodes:
        if node.address:
            nodes.setdefault(node.address, []).append(node.name)
    for state in snap.redis:
        out += _one(state, profiles.get(state.host, RedisProfile.CACHE), planned.get(state.host))
        out += _above_demand(state, planned.get(state.host), {a: "+".join(n) for a, n in nodes.items()})
        rules = snap.redis_app_rules.get(state.host)
        out += _version(state, rules, snap.acknowledged_cves.get(state.host, frozenset()))
    return out


def allows_scripting(rules: str) -> bool:
    """Whether ACL rules (applied after the role's ``-@all``) let the user run EVAL or FCALL.

    >>> [allows_scripting(r) for r in (DEFAULT_APP_RULES, "+@read +eval", "+@all -@scripting", "+@slow")]
    [False, True, False, True]
    """
    allowed = dict.fromkeys(_SCRIPT_COMMANDS, False)
    for word in rules.lower().split():
        on = word.startswith("+")
        name = word[1:]
        if word in ("allcommands", "nocommands", "reset"):
            allowed = dict.fromkeys(_SCRIPT_COMMANDS, word == "allcommands")
        elif word[:1] in "+-" and name.startswith("@") and name[1:] in _SCRIPT_CATEGORIES:
            allowed = dict.fromkeys(_SCRIPT_COMMANDS, on)
        elif word[:1] in "+-" and name.split("|")[0] in _SCRIPT_COMMANDS:
            allowed[name.split("|")[0]] = on
    return any(allowed.values())


def _version(state: RedisState, rules: str | None, acknowledged: frozenset[str]) -> list[Finding]:
    if "valkey_version" in state.info:  # Valkey reports a Redis compatibility version: not comparable
        return []
    found = versions.parse_version(str(state.info.get("redis_version", "")))
    if found is None:
        return []
    open_cves = versions.affecting("redis", found, acknowledged)
    if not open_cves:
        return []
    source = "inventory" if rules is not None else "the redis role's default"
    scripting = allows_scripting(rules if rules is not None else DEFAULT_APP_RULES)
    shown = ".".join(map(str, found))
    fixed = "; ".join(f"{a.cve} fixed in {a.fixed_in}" for a in open_cves)
    reach = (
        "the app user may run scripts (EVAL/FCALL), so a leaked app password is code execution"
        if scripting
        else "the app user may not run scripts; any user that may is exposed"
    )
    return [
        Finding(
            _P + "version_outdated",
            Severity.CRITICAL if scripting else Severity.WARNING,
            f"redis@{state.address}",
            f"Redis {shown} lacks the fix for {', '.join(a.cve for a in open_cves)} "
            f"(Lua use-after-free): {reach}",
            {
                "version": shown,
                "cves": {a.cve: f"{a.kind}; fixed in {a.fixed_in}" for a in open_cves},
                "app_user_scripting": scripting,
                "rules_from": source,
                "acknowledged": sorted(acknowledged),
            },
            f"upgrade Redis ({fixed}; 7.0 has no upstream fix); until then keep scripting out of "
            "redis_app_command_rules (-@scripting); if the distribution's build carries the fix, list the "
            f"CVE id in {versions.ACK_VARIABLE} for host {state.host} in the inventory",
        )
    ]


def _one(state: RedisState, profile: RedisProfile, planned: RedisPlan | None) -> list[Finding]:
    target = f"redis@{state.address}"
    info, config = state.info, state.config
    out: list[Finding] = []

    def add(
        name: str,
        sev: Severity,
        summary: str,
        evidence: dict[str, object],
        remedy: str,
        runbook: str | None = None,
    ) -> None:
        out.append(Finding(_P + name, sev, target, summary, evidence, remedy, runbook))

    if state.anonymous_ok:
        add(
            "auth_disabled",
            Severity.CRITICAL,
            "Redis accepts commands without a password",
            {"default_user": "on, nopass"},
            "turn the default user off (redis role: ACL users)",
        )
    policy = config.get("maxmemory-policy", "")
    if as_int(config.get("maxmemory")) == 0:
        add(
            "maxmemory_unset",
            Severity.WARNING,
            "maxmemory is 0: Redis grows until the host runs out of memory",
            {"maxmemory": 0, "maxmemory-policy": policy},
            "set redis_maxmemory_mb or redis_memory_share",
        )
    if profile is RedisProfile.CACHE and not policy.startswith("allkeys"):
        add(
            "eviction_policy_not_for_cache",
            Severity.WARNING,
            f"a cache with maxmemory-policy {policy}: "
            "writes fail (or only keys with a TTL go) when memory is full",
            {"maxmemory-policy": policy, "profile": profile.value},
            "use allkeys-lru for a cache",
        )
    if profile is RedisProfile.BROKER and policy != "noeviction":
        add(
            "eviction_policy_not_for_cache",
            Severity.CRITICAL,
            f"a broker with maxmemory-policy {policy}: queued messages can be evicted",
            {"maxmemory-policy": policy, "profile": profile.value},
            "use noeviction for a broker",
        )
    demand = planned.client_demand if planned else 0
    maxclients = as_int(config.get("maxclients"))
    if demand and maxclients and maxclients < demand:
        add(
            "maxclients_below_demand",
            Severity.CRITICAL,
            f"maxclients {maxclients} is below the {demand} app clients",
            {"maxclients": maxclients, "demand": demand},
            "re-deploy with the planned maxclients",
            "redis-raise-maxclients",
        )
    rejected, connected = as_int(info.get("rejected_connections")), as_int(info.get("connected_clients"))
    if rejected and maxclients and connected >= NEAR_MAXCLIENTS * maxclients:
        add(
            "rejected_connections",
            Severity.WARNING,
            f"{connected} of maxclients {maxclients} in use, {rejected} connection(s) refused since start",
            {"rejected_connections": rejected, "connected_clients": connected, "maxclients": maxclients},
            "look for a client leak (redis.clients_above_demand names the nodes); "
            "check maxclients against the plan",
            "redis-kill-idle-clients",
        )
    evicted = as_int(info.get("evicted_keys"))
    if evicted:
        sev = Severity.CRITICAL if profile is RedisProfile.BROKER else Severity.WARNING
        add(
            "evictions",
            sev,
            f"{evicted} key(s) evicted since start: memory is full",
            {"evicted_keys": evicted, "used_memory": as_int(info.get("used_memory"))},
            "raise maxmemory, or give keys shorter TTLs",
            "cache-flush-namespace",
        )
    hits, misses = as_int(info.get("keyspace_hits")), as_int(info.get("keyspace_misses"))
    lookups = hits + misses
    if (
        profile is RedisProfile.CACHE
        and lookups >= HIT_RATIO_MIN_LOOKUPS
        and hits / lookups < HIT_RATIO_WARNING
    ):
        add(
            "hit_ratio_low",
            Severity.WARNING,
            f"hit ratio {hits / lookups:.0%} over {lookups} lookups",
            {"keyspace_hits": hits, "keyspace_misses": misses},
            "check key versions and prefixes across nodes (cache.*); check TTLs and maxmemory",
        )
    if profile is RedisProfile.CACHE and state.keys_without_ttl:
        add(
            "keys_without_ttl",
            Severity.WARNING,
            f"{state.keys_without_ttl} of {state.sampled_keys} sampled keys "
            f"under '{state.sample_prefix}' never expire",
            {
                "sampled": state.sampled_keys,
                "without_ttl": state.keys_without_ttl,
                "prefix": state.sample_prefix,
            },
            "set CACHES TIMEOUT (not None) and pass timeouts to cache.set",
            "cache-flush-namespace",
        )
    return out


def _above_demand(state: RedisState, planned: RedisPlan | None, names: dict[str, str]) -> list[Finding]:
    """More app connections than the plan's client demand for this Redis: a leak, before it hurts."""
    demand = planned.client_demand if planned else 0
    if state.clients_by_ip is None:  # no CLIENT LIST: all but doctor's own connection
        app, by_node = max(0, as_int(state.info.get("connected_clients")) - 1), {}
    else:
        app = sum(state.clients_by_ip.values())
        ranked = sorted(state.clients_by_ip.items(), key=lambda item: (-item[1], item[0]))
        by_node = {names.get(ip, ip): count for ip, count in ranked[:TOP_NODES]}
    if not demand or app <= demand:
        return []
    most = ", ".join(f"{node} {count}" for node, count in by_node.items())
    return [
        Finding(
            _P + "clients_above_demand",
            Severity.WARNING,
            f"redis@{state.address}",
            f"{app} app connections, above the plan's {demand}" + (f" (most: {most})" if most else ""),
            {
                "app_clients": app,
                "demand": demand,
                "maxclients": as_int(state.config.get("maxclients")),
                "by_node": by_node,
            },
            "bound each process's pool on the nodes named (CACHES OPTIONS pool_class "
            "toolkit.django.cache.SharedBlockingPool, max_connections = django_threads), "
            "or count the extra clients in django_extra_clients",
            "redis-kill-idle-clients",
        )
    ]

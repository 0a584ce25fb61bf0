"""Cache settings that go wrong across processes and nodes, or over time.

Read from the Django profile (settings.CACHES) against the topology: how many nodes and processes
run the app. Facts from Django 5.2: LocMemCache is per process and ``check --deploy`` does not warn
about it; keys are ``KEY_PREFIX:VERSION:key``; RedisCache.clear() sends FLUSHDB; TIMEOUT defaults to
300 seconds and None means keys never expire.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.django import CacheAlias, DjangoProfile
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import Topology
from toolkit.domain.snapshot import Snapshot

AREA = "cache"

LOCAL_MEMORY = "cache.local_memory_multi_process"
NO_PREFIX = "cache.no_key_prefix_shared_redis"
NO_TIMEOUT = "cache.no_default_timeout"
DISAGREE = "cache.nodes_disagree"

CATALOG: tuple[CheckInfo, ...] = (
    CheckInfo(LOCAL_MEMORY, "LocMemCache on more than one process: each holds its own copy"),
    CheckInfo(NO_PREFIX, "a Redis cache without KEY_PREFIX"),
    CheckInfo(NO_TIMEOUT, "TIMEOUT None: cache keys never expire"),
    CheckInfo(DISAGREE, "app nodes configure the same cache differently: they do not share entries"),
)


def run(snapshot: Snapshot) -> list[Finding]:
    """Return the cache.* findings: per settings profile, then across the app nodes."""
    if snapshot.django_nodes:
        profiles = [(f"django:{node}", p) for node, p in snapshot.django_nodes.items()]
    elif snapshot.django is not None:
        profiles = [(f"django:{snapshot.django.settings_module}", snapshot.django)]
    else:
        return []
    found: list[Finding] = []
    for where, profile in profiles:
        for cache in profile.caches:
            target = f"{where}:cache:{cache.alias}"
            local = _local_memory(target, cache, snapshot.topology)
            if local is not None:
                found.append(local)
            if cache.is_redis and not cache.key_prefix:
                found.append(_no_prefix(target, cache, profile))
            if cache.timeout is None and not cache.backend.endswith("DummyCache"):
                found.append(_no_timeout(target, cache))
    return found + nodes_disagree(snapshot.django_nodes)


def _signature(cache: CacheAlias | None) -> dict[str, object]:
    if cache is None:
        return {"backend": None}
    return {
        "backend": cache.backend,
        # In order: RedisCache writes to the first server and reads from the others, so [r1, r2]
        # and [r2, r1] are two different primaries.
        "location": list(cache.location),
        "key_prefix": cache.key_prefix,
        "version": cache.version,
    }


def nodes_disagree(nodes: Mapping[str, DjangoProfile]) -> list[Finding]:
    """One finding per cache alias whose backend, LOCATION, KEY_PREFIX or VERSION differs between nodes.

    Different backends or locations mean different stores (CRITICAL: a write or delete on one node
    never reaches the other); the same store under a different KEY_PREFIX or VERSION means different
    key names in it (WARNING: expected for a moment while a rolling deploy bumps VERSION).

    >>> from toolkit.domain.django import CacheAlias, DjangoProfile
    >>> def node(prefix):
    ...     c = CacheAlias("default", "django.core.cache.backends.redis.RedisCache", ("redis://r:6379/0",),
    ...                    prefix, 1, 300)
    ...     return DjangoProfile("demo.settings", "5.2", (), (c,))
    >>> [(f.id, f.severity.name) for f in nodes_disagree({"a": node("demo"), "b": node("demo2")})]
    [('cache.nodes_disagree', 'WARNING')]
    >>> nodes_disagree({"a": node("demo"), "b": node("demo")})
    []
    """
    if len(nodes) < 2:
        return []
    aliases = sorted({c.alias for p in nodes.values() for c in p.caches})
    found: list[Finding] = []
    for alias in aliases:
        per_node = {
            node: _signature(next((c for c in p.caches if c.alias == alias), None))
            for node, p in nodes.items()
        }
        distinct = {repr(sig) for sig in per_node.values()}
        if len(distinct) < 2:
            continue
        stores = {repr((sig.get("backend"), sig.get("location"))) for sig in per_node.values()}
        differs = sorted(
            {
                k
                for sig in per_node.values()
                for k, v in sig.items()
                if any(other.get(k) != v for other in per_node.values())
            }
        )
        severity = Severity.CRITICAL if len(stores) > 1 else Severity.WARNING
        found.append(
            Finding(
                DISAGREE,
                severity,
                f"django:cache:{alias}",
                f"the {len(nodes)} app nodes configure cache {alias!r} differently ({', '.join(differs)}): "
                + (
                    "they use different stores, so a write or delete on one node never reaches the others"
                    if severity is Severity.CRITICAL
                    else "they name keys differently in one store and do not see each other's entries"
                ),
                {"differs": differs, "nodes": per_node},
                "render CACHES from one source for every node (the inventory's Redis, one KEY_PREFIX and "
                "VERSION); while a rolling deploy bumps VERSION this clears once every node runs the release",
            )
        )
    return found


def processes(topology: Topology) -> dict[str, int]:
    """Python processes per app node that import Django: web workers, Celery workers, other clients.

    >>> from toolkit.domain.models import AppNode, DatabaseCapacity
    >>> processes(Topology(DatabaseCapacity(10, 1), (), (AppNode("a", workers=3, celery_concurrency=2),)))
    {'a': 5}
    """
    return {n.name: n.workers + n.celery_concurrency + n.extra_clients for n in topology.app_nodes}


def _local_memory(target: str, cache: CacheAlias, topology: Topology) -> Finding | None:
    if not cache.is_local_memory:
        return None
    per_node = processes(topology)
    total = sum(per_node.values())
    if len(per_node) > 1:
        severity = Severity.CRITICAL
        where = f"{len(per_node)} app nodes"
    elif total > 1:
        severity = Severity.WARNING
        where = f"one app node with {total} processes"
    else:
        return None
    return Finding(
        LOCAL_MEMORY,
        severity,
        target,
        f"LocMemCache on {where}: {total} separate copies; a delete or update reaches only the "
        "process that made it",
        {"backend": cache.backend, "processes_per_node": per_node, "copies": total},
        "use a shared cache (django.core.cache.backends.redis.RedisCache on the inventory's Redis); "
        "keep LocMemCache only for per-process data that may differ between processes",
    )


def _no_prefix(target: str, cache: CacheAlias, profile: DjangoProfile) -> Finding:
    return Finding(
        NO_PREFIX,
        Severity.WARNING,
        target,
        "Redis cache without KEY_PREFIX: every app and environment using this Redis database writes "
        f"the same ':{cache.version}:<key>' names and overwrites the others' entries",
        {"location": list(cache.location), "key_prefix": "", "version": cache.version},
        f"set KEY_PREFIX (e.g. '{_suggest_prefix(profile.settings_module)}'); to keep one app's "
        "cache.clear() (FLUSHDB) from wiping another's keys, give each app its own Redis database "
        "number or an ACL user without FLUSHDB",
    )


def _suggest_prefix(settings_module: str) -> str:
    """A prefix from the settings module name.

    >>> _suggest_prefix("shop.settings.production")
    'shop-production'
    >>> _suggest_prefix("settings")
    'settings'
    """
    parts = [p for p in settings_module.split(".") if p and p != "settings"]
    return "-".join(parts) or "settings"


def _no_timeout(target: str, cache: CacheAlias) -> Finding:
    if cache.is_redis:
        consequence = (
            "Redis keeps them until maxmemory; then allkeys-lru evicts approximately least recently "
            "used keys, while noeviction and volatile-* policies make writes fail with OOM"
        )
    else:
        consequence = "stale entries stay until culled at MAX_ENTRIES or the process restarts"
    return Finding(
        NO_TIMEOUT,
        Severity.WARNING,
        target,
        f"TIMEOUT is None: keys set without an explicit timeout never expire; {consequence}",
        {"backend": cache.backend, "timeout": None, "location": list(cache.location)},
        "set TIMEOUT to the longest staleness the data can bear (Django's default is 300 s) and "
        "pass timeout=None only for keys that must persist",
    )

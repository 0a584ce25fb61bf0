"""Cache settings that go wrong across processes and nodes, or over time.

Read from the Django profile (settings.CACHES) against the topology: how many nodes and processes
run the app. Facts from Django 5.2: LocMemCache is per process and ``check --deploy`` does not warn
about it; keys are ``KEY_PREFIX:VERSION:key``; RedisCache.clear() sends FLUSHDB; TIMEOUT defaults to
300 seconds and None means keys never expire.
"""

from __future__ import annotations

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.django import CacheAlias, DjangoProfile
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import Topology
from toolkit.domain.snapshot import Snapshot

AREA = "cache"

LOCAL_MEMORY = "cache.local_memory_multi_process"
NO_PREFIX = "cache.no_key_prefix_shared_redis"
NO_TIMEOUT = "cache.no_default_timeout"

CATALOG: tuple[CheckInfo, ...] = (
    CheckInfo(LOCAL_MEMORY, "LocMemCache on more than one process: each holds its own copy"),
    CheckInfo(NO_PREFIX, "a Redis cache without KEY_PREFIX"),
    CheckInfo(NO_TIMEOUT, "TIMEOUT None: cache keys never expire"),
)


def run(snapshot: Snapshot) -> list[Finding]:
    """Return the cache.* findings."""
    profile = snapshot.django
    if profile is None:
        return []
    found: list[Finding] = []
    for cache in profile.caches:
        target = f"django:{profile.settings_module}:cache:{cache.alias}"
        local = _local_memory(target, cache, snapshot.topology)
        if local is not None:
            found.append(local)
        if cache.is_redis and not cache.key_prefix:
            found.append(_no_prefix(target, cache, profile))
        if cache.timeout is None and not cache.backend.endswith("DummyCache"):
            found.append(_no_timeout(target, cache))
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

"""cache.* checks on hand-built snapshots: each id at, and just around, its condition."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from toolkit.domain.checks import cache as checks
from toolkit.domain.django import CacheAlias, DjangoProfile
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import AppNode, DatabaseCapacity, PgBouncerHost, Topology
from toolkit.domain.snapshot import Snapshot

DOCS = [Path(__file__).resolve().parents[2] / "docs" / p for p in ("checks.d/cache.md", "checks.md")]
W, C = Severity.WARNING, Severity.CRITICAL
REDIS = "django.core.cache.backends.redis.RedisCache"
LOCMEM = "django.core.cache.backends.locmem.LocMemCache"

GOOD = CacheAlias("default", REDIS, ("redis://:***@10.0.0.8:6379/0",), "shop", 1, 300.0)


def _topology(*nodes: AppNode) -> Topology:
    pgb = PgBouncerHost("pgb1", ("shop",), ("shop",))
    return Topology(DatabaseCapacity(100, 4), (pgb,), nodes)


ONE_WORKER = _topology(AppNode("app1", workers=1))
ONE_NODE_FOUR = _topology(AppNode("app1", workers=4))
ONE_NODE_CELERY = _topology(AppNode("app1", workers=1, celery_concurrency=2))
TWO_NODES = _topology(AppNode("app1", workers=1), AppNode("app2", workers=1))
NO_NODES = _topology()


def _run(cache: CacheAlias, topology: Topology = ONE_NODE_FOUR) -> list[Finding]:
    profile = DjangoProfile("shop.settings", "5.2", (), (cache,))
    return checks.run(Snapshot(topology=topology, plan=None, django=profile))


def _severity(found: list[Finding], fid: str) -> Severity | None:
    hits = [f for f in found if f.id == fid]
    assert len(hits) <= 1
    return hits[0].severity if hits else None


LOC = {"backend": LOCMEM, "location": ("unique-snowflake",)}
CASES: list[tuple[str, str, dict[str, Any], Topology, Severity | None]] = [
    # (finding id, case, cache changes, topology, expected severity or None)
    (checks.LOCAL_MEMORY, "two nodes of one worker", LOC, TWO_NODES, C),
    (checks.LOCAL_MEMORY, "one node, four workers", LOC, ONE_NODE_FOUR, W),
    (checks.LOCAL_MEMORY, "one worker and Celery", LOC, ONE_NODE_CELERY, W),
    (checks.LOCAL_MEMORY, "one node, one process", LOC, ONE_WORKER, None),
    (checks.LOCAL_MEMORY, "no app node known", LOC, NO_NODES, None),
    (checks.LOCAL_MEMORY, "Redis on two nodes", {}, TWO_NODES, None),
    (checks.NO_PREFIX, "Redis, empty prefix", {"key_prefix": ""}, ONE_NODE_FOUR, W),
    (
        checks.NO_PREFIX,
        "django-redis, empty prefix",
        {"backend": "django_redis.cache.RedisCache", "key_prefix": ""},
        ONE_NODE_FOUR,
        W,
    ),
    (checks.NO_PREFIX, "Redis with a prefix", {}, ONE_NODE_FOUR, None),
    (checks.NO_PREFIX, "LocMem, empty prefix", {**LOC, "key_prefix": ""}, ONE_WORKER, None),
    (checks.NO_TIMEOUT, "Redis, None", {"timeout": None}, ONE_NODE_FOUR, W),
    (checks.NO_TIMEOUT, "LocMem, None", {**LOC, "timeout": None}, ONE_WORKER, W),
    (checks.NO_TIMEOUT, "Redis, default 300", {}, ONE_NODE_FOUR, None),
    (checks.NO_TIMEOUT, "Redis, 0 (do not cache)", {"timeout": 0.0}, ONE_NODE_FOUR, None),
    (
        checks.NO_TIMEOUT,
        "DummyCache, None",
        {"backend": "django.core.cache.backends.dummy.DummyCache", "timeout": None},
        ONE_NODE_FOUR,
        None,
    ),
]


@pytest.mark.parametrize(
    ("fid", "changes", "topology", "expected"),
    [(c[0], c[2], c[3], c[4]) for c in CASES],
    ids=[f"{c[0].split('.')[1]}: {c[1]}" for c in CASES],
)
def test_condition(fid: str, changes: dict[str, Any], topology: Topology, expected: Severity | None) -> None:
    assert _severity(_run(replace(GOOD, **changes), topology), fid) is expected


def _nodes(**per_node: dict[str, Any]) -> dict[str, DjangoProfile]:
    return {
        node: DjangoProfile(
            "shop.settings", "5.2", (), (replace(GOOD, **changes),) if changes is not None else ()
        )
        for node, changes in per_node.items()
    }


OTHER_REDIS = ("redis://:***@10.0.0.9:6379/0",)
NODE_CASES: list[tuple[str, dict[str, DjangoProfile], Severity | None]] = [
    # (case, profiles by node, expected severity of cache.nodes_disagree)
    ("the same Redis, prefix and version", _nodes(a={}, b={}, c={}), None),
    ("one node only", _nodes(a={}), None),
    ("both LocMem (cache.local_memory_multi_process says it)", _nodes(a=LOC, b=LOC), None),
    ("one node on LocMem", _nodes(a={}, b=LOC), C),
    ("another Redis host", _nodes(a={}, b={"location": OTHER_REDIS}), C),
    (
        # RedisCache writes to the first server of LOCATION: another order is another primary.
        "the same hosts listed in another order",
        _nodes(
            a={"location": (*GOOD.location, *OTHER_REDIS)}, b={"location": (*OTHER_REDIS, *GOOD.location)}
        ),
        C,
    ),
    (
        "the same hosts in the same order",
        _nodes(
            a={"location": (*GOOD.location, *OTHER_REDIS)}, b={"location": (*GOOD.location, *OTHER_REDIS)}
        ),
        None,
    ),
    ("no default cache on one node", _nodes(a={}, b=None), C),
    ("another KEY_PREFIX", _nodes(a={}, b={"key_prefix": "shop2"}), W),
    ("VERSION bumped on one node (rolling deploy)", _nodes(a={}, b={"version": 2}), W),
    ("TIMEOUT differs only", _nodes(a={}, b={"timeout": 60.0}), None),
]


@pytest.mark.parametrize(("nodes", "expected"), [c[1:] for c in NODE_CASES], ids=[c[0] for c in NODE_CASES])
def test_nodes_disagree(nodes: dict[str, DjangoProfile], expected: Severity | None) -> None:
    snap = Snapshot(topology=TWO_NODES, plan=None, django_nodes=nodes)
    assert _severity(checks.run(snap), checks.DISAGREE) is expected


def test_nodes_disagree_evidence_names_each_node_and_what_differs() -> None:
    (f,) = checks.nodes_disagree(_nodes(a={}, b={"key_prefix": "shop2", "version": 3}))
    assert f.target == "django:cache:default"
    assert f.evidence["differs"] == ["key_prefix", "version"]
    assert f.evidence["nodes"]["b"]["key_prefix"] == "shop2"
    assert "***" in f.evidence["nodes"]["a"]["location"][0]


def test_per_node_findings_name_the_node() -> None:
    snap = Snapshot(topology=TWO_NODES, plan=None, django_nodes=_nodes(a=LOC, b=LOC))
    assert sorted(f.target for f in checks.run(snap)) == ["django:a:cache:default", "django:b:cache:default"]


def test_every_id_has_a_positive_and_a_negative_case() -> None:
    for info in checks.CATALOG:
        if info.id == checks.DISAGREE:
            outcomes = {c[2] is None for c in NODE_CASES}
        else:
            outcomes = {c[4] is None for c in CASES if c[0] == info.id}
        assert outcomes == {True, False}, info.id


def test_healthy_cache_has_no_finding() -> None:
    assert _run(GOOD, TWO_NODES) == []


def test_no_profile_no_finding() -> None:
    assert checks.run(Snapshot(topology=TWO_NODES, plan=None)) == []


def test_local_memory_evidence() -> None:
    (f,) = _run(replace(GOOD, **LOC), _topology(AppNode("a", workers=3), AppNode("b", celery_concurrency=2)))
    assert f.target == "django:shop.settings:cache:default"
    assert f.evidence["processes_per_node"] == {"a": 3, "b": 3}
    assert f.evidence["copies"] == 6
    assert f.summary.startswith("LocMemCache on 2 app nodes: 6 separate copies")


def test_no_prefix_says_what_a_prefix_does_not_protect() -> None:
    (f,) = _run(replace(GOOD, key_prefix="", version=2))
    assert "':2:<key>'" in f.summary
    assert "FLUSHDB" in f.remedy
    assert "KEY_PREFIX (e.g. 'shop')" in f.remedy


def test_no_timeout_states_the_eviction_accurately() -> None:
    (redis,) = _run(replace(GOOD, timeout=None))
    assert "allkeys-lru evicts approximately least recently used keys" in redis.summary
    assert "noeviction and volatile-* policies make writes fail with OOM" in redis.summary
    (local,) = _run(replace(GOOD, backend=LOCMEM, timeout=None), ONE_WORKER)
    assert "MAX_ENTRIES" in local.summary


def test_catalog_ids_are_documented() -> None:
    text = "".join(p.read_text() for p in DOCS if p.exists())
    for info in checks.CATALOG:
        assert info.id.startswith("cache.")
        assert f"`{info.id}`" in text, info.id

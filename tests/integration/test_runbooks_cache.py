"""cache-flush-namespace on the lab, from this machine: keys in two namespaces written as the app's Redis
user on redis1 (the cache); only the named namespace goes, on the named host only (redis2, the broker,
keeps the same keys); a glob prefix is refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.integration import runbooks_lab as lab
from tests.integration.conftest import address, lab_secret

pytestmark = pytest.mark.integration
FLUSHED, KEPT = "lab:rbtest-old:", "lab:rbtest-keep:"


@pytest.fixture
def cache() -> Iterator[redis.Redis]:
    client = redis.Redis(
        host=address("redis1"),
        port=6379,
        username="app",
        password=lab_secret("redis_app_password"),
        decode_responses=True,
    )
    pipe = client.pipeline(transaction=False)
    for i in range(1200):  # more than one SCAN page and more than one UNLINK batch
        pipe.set(f"{FLUSHED}{i}", "x", ex=600)
    for i in range(40):
        pipe.set(f"{KEPT}{i}", "y", ex=600)
    pipe.execute()
    try:
        yield client
    finally:
        for prefix in (FLUSHED, KEPT):
            keys = list(client.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                client.unlink(*keys)
        client.close()


def _count(client: redis.Redis, prefix: str) -> int:
    return sum(1 for _ in client.scan_iter(match=f"{prefix}*", count=500))


def test_flush_namespace_removes_only_that_namespace(cache: redis.Redis, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    dry = lab.run("cache-flush-namespace", "--target", "redis1", "--prefix", FLUSHED, audit=audit)
    assert dry.code == 0, dry.stderr
    (action,) = dry.doc["plan"]["actions"]
    assert action["parameters"]["keys"] == 1200
    assert (_count(cache, FLUSHED), _count(cache, KEPT)) == (1200, 40)
    assert lab.audit_records(audit) == []

    done = lab.run("cache-flush-namespace", "--target", "redis1", "--prefix", FLUSHED, audit=audit, yes=True)
    assert done.code == 0, done.stdout + done.stderr
    assert done.doc["verified"] is True
    assert (_count(cache, FLUSHED), _count(cache, KEPT)) == (0, 40)
    (record,) = lab.outcomes(audit)
    assert record["target"] == f"redis@{address('redis1')}:6379"
    assert (record["runbook"], record["action"]) == ("cache-flush-namespace", "unlink_prefix")
    assert record["parameters"]["prefix"] == FLUSHED
    assert record["result"] == "unlinked 1200 key(s)"
    lab.no_secret(dry.stdout, done.stdout, audit.read_text())


@pytest.mark.parametrize("prefix", ["*", "", "lab:*"])
def test_glob_and_empty_prefixes_are_refused(cache: redis.Redis, tmp_path: Path, prefix: str) -> None:
    audit = tmp_path / "audit.jsonl"
    result = lab.run("cache-flush-namespace", "--target", "redis1", "--prefix", prefix, audit=audit, yes=True)
    lab.assert_one_line_error(result, 64, "would match every key")
    assert (_count(cache, FLUSHED), _count(cache, KEPT)) == (1200, 40)
    assert lab.audit_records(audit) == []


# --- a prefix that another namespace begins with --------------------------------------------------

SPACE, OTHER = "lab:rbc:1:", "lab:rbcelery-task-meta-"


@pytest.fixture
def two_namespaces(cache: redis.Redis) -> Iterator[redis.Redis]:
    """'lab:rbc:1:*' (Django's namespace 'lab:rbc') and 'lab:rbcelery-task-meta-*', which begins with
    'lab:rbc' too."""
    pipe = cache.pipeline(transaction=False)
    for i in range(30):
        pipe.set(f"{SPACE}{i}", "x", ex=600)
    for i in range(7):
        pipe.set(f"{OTHER}{i}", "y", ex=600)
    pipe.execute()
    try:
        yield cache
    finally:
        for prefix in (SPACE, OTHER):
            keys = list(cache.scan_iter(match=f"{prefix}*", count=500))
            if keys:
                cache.unlink(*keys)


def test_a_prefix_that_another_namespace_begins_with_is_refused(
    two_namespaces: redis.Redis, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    result = lab.run(
        "cache-flush-namespace", "--target", "redis1", "--prefix", "lab:rbc", audit=audit, yes=True
    )
    lab.assert_one_line_error(
        result, 2, "--prefix 'lab:rbc' also matches 7 key(s) outside the namespace 'lab:rbc:'"
    )
    assert (_count(two_namespaces, SPACE), _count(two_namespaces, OTHER)) == (30, 7)
    assert lab.audit_records(audit) == []


def test_the_namespace_with_its_separator_deletes_only_itself(
    two_namespaces: redis.Redis, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    done = lab.run(
        "cache-flush-namespace", "--target", "redis1", "--prefix", "lab:rbc:", audit=audit, yes=True
    )
    assert done.code == 0, done.stdout + done.stderr
    assert done.doc["plan"]["actions"][0]["parameters"]["keys"] == 30
    assert (_count(two_namespaces, SPACE), _count(two_namespaces, OTHER)) == (0, 7)
    (record,) = lab.outcomes(audit)
    assert record["parameters"]["prefix"] == "lab:rbc:"


def test_django_key_prefix_and_version_name_the_namespace(
    two_namespaces: redis.Redis, tmp_path: Path
) -> None:
    audit = tmp_path / "audit.jsonl"
    done = lab.run(
        "cache-flush-namespace",
        "--target",
        "redis1",
        "--key-prefix",
        "lab:rbc",
        "--version",
        "1",
        audit=audit,
        yes=True,
    )
    assert done.code == 0, done.stdout + done.stderr
    assert (_count(two_namespaces, SPACE), _count(two_namespaces, OTHER)) == (0, 7)


@pytest.mark.parametrize(
    ("prefix", "code", "fragment"),
    [
        ("celery", 64, "outside the app's key prefix 'lab:'"),
        ("rbc:", 64, "outside the app's key prefix 'lab:'"),
    ],
)
def test_a_prefix_outside_the_app_prefix_is_refused(
    two_namespaces: redis.Redis, tmp_path: Path, prefix: str, code: int, fragment: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    result = lab.run("cache-flush-namespace", "--target", "redis1", "--prefix", prefix, audit=audit, yes=True)
    lab.assert_one_line_error(result, code, fragment)
    assert (_count(two_namespaces, SPACE), _count(two_namespaces, OTHER)) == (30, 7)


@pytest.mark.parametrize("version", ["-1", "nan", "1.5", "\u0661", "99999999999"])
def test_bad_versions_are_refused(tmp_path: Path, version: str) -> None:
    audit = tmp_path / "audit.jsonl"
    result = lab.run(
        "cache-flush-namespace",
        "--target",
        "redis1",
        "--key-prefix",
        "lab",
        "--version",
        version,
        audit=audit,
        yes=True,
    )
    lab.assert_one_line_error(result, 64, "--version: ")


def test_a_flush_on_redis1_leaves_redis2_the_broker_alone(cache: redis.Redis, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    broker = redis.Redis(
        host=address("redis2"),
        port=6379,
        username="app",
        password=lab_secret("redis_app_password"),
        decode_responses=True,
    )
    try:
        pipe = broker.pipeline(transaction=False)
        for i in range(25):
            pipe.set(f"{FLUSHED}{i}", "broker", ex=600)
        pipe.execute()
        no_target = lab.run("cache-flush-namespace", "--prefix", FLUSHED, audit=audit, yes=True)
        lab.assert_one_line_error(no_target, 64, "pick one Redis with --target")
        done = lab.run(
            "cache-flush-namespace", "--target", "redis1", "--prefix", FLUSHED, audit=audit, yes=True
        )
        assert done.code == 0, done.stdout + done.stderr
        assert _count(cache, FLUSHED) == 0
        assert _count(broker, FLUSHED) == 25  # the broker is another host: untouched
        assert [r["target"] for r in lab.outcomes(audit)] == [f"redis@{address('redis1')}:6379"]
    finally:
        keys = list(broker.scan_iter(match=f"{FLUSHED}*", count=500))
        if keys:
            broker.unlink(*keys)
        broker.close()

"""Doctor's TTL sample on the lab's Redis cache (redis1), read from the controller as the ops user.

The ops user may SCAN and TTL keys under the prefix but never read a value: the sample must work
with keys present (with and without a TTL), and the user must still be refused GET.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest
import redis

from tests.integration.conftest import BIN, LAB_INVENTORY, ROOT, address, lab_secret

CACHE = "redis1"

pytestmark = pytest.mark.integration


def _client(user: str, secret: str) -> redis.Redis:
    return redis.Redis(host=address(CACHE), port=6379, username=user, password=lab_secret(secret))


@pytest.fixture
def keys() -> Iterator[list[str]]:
    """Keys under the lab prefix written as the app user: 30 with a TTL, 10 without."""
    app = _client("app", "redis_app_password")
    tag = uuid.uuid4().hex[:8]
    with_ttl = [f"lab:1:doctor-{tag}-t{i}" for i in range(30)]
    without = [f"lab:1:doctor-{tag}-n{i}" for i in range(10)]
    pipe = app.pipeline(transaction=False)
    for k in with_ttl:
        pipe.set(k, "x", ex=600)
    for k in without:
        pipe.set(k, "x")
    pipe.execute()
    try:
        yield without
    finally:
        app.unlink(*with_ttl, *without)
        app.close()


def test_doctor_samples_ttls_with_keys_present_and_reports_those_without(keys: list[str]) -> None:
    proc = subprocess.run(
        [
            str(BIN / "toolkit"),
            "doctor",
            "-i",
            str(LAB_INVENTORY),
            "--secrets",
            str(ROOT / ".lab"),
            "--only",
            "redis",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    doc = json.loads(proc.stdout)
    redis_targets = [t for t in doc["targets"] if t["kind"] == "redis"]
    assert redis_targets and all(t["ok"] for t in redis_targets), redis_targets
    found = [
        f
        for f in doc["findings"]
        if f["id"] == "redis.keys_without_ttl" and f["target"] == f"redis@{address(CACHE)}:6379"
    ]
    assert len(found) == 1, doc["findings"]
    assert found[0]["evidence"]["without_ttl"] >= len(keys), found[0]["evidence"]


def test_the_ops_user_still_cannot_read_a_value(keys: list[str]) -> None:
    ops = _client("toolkit", "redis_ops_password")
    try:
        assert ops.ttl(keys[0]) == -1
        with pytest.raises(redis.exceptions.NoPermissionError):
            ops.get(keys[0])
    finally:
        ops.close()

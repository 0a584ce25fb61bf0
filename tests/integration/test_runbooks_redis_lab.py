"""The Redis client runbooks on the lab, from this machine, against redis1 (Redis 7.0) and redis2 (8.0).

redis-raise-maxclients: the dry run changes nothing; --yes raises maxclients with CONFIG SET (as the
role's admin user) and CONFIG GET reads it back; a value above the open-file limit is refused with
exit 2 and nothing changes; the original maxclients is restored at the end.
redis-kill-idle-clients: idle connections of the app user and one busy one (a PING every 0.2 s); the
run ends exactly the idle ones, and the dry run ends none.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration import runbooks_lab as lab
from tests.integration.conftest import address, lab_secret

pytestmark = pytest.mark.integration
NAME = "tk-rbtest-idle"  # CLIENT SETNAME of the test's clients: the run is narrowed to them


def _login(host: str, user: str, secret: str) -> redis.Redis:
    return redis.Redis(
        host=address(host),
        port=6379,
        username=user,
        password=lab_secret(secret),
        decode_responses=True,
        socket_timeout=10,
    )


def _maxclients(host: str) -> int:
    ops = _login(host, "toolkit", "redis_ops_password")
    try:
        return int(ops.config_get("maxclients")["maxclients"])
    finally:
        ops.close()


@pytest.fixture
def redis1_maxclients() -> Iterator[int]:
    """redis1's maxclients before the test; put back afterwards whatever the test did."""
    before = _maxclients("redis1")
    try:
        yield before
    finally:
        admin = _login("redis1", "deploy", "redis_admin_password")
        try:
            admin.config_set("maxclients", before)
        finally:
            admin.close()
        assert _maxclients("redis1") == before


def test_dry_run_changes_nothing(redis1_maxclients: int, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    wanted = redis1_maxclients + 7
    dry = lab.run("redis-raise-maxclients", "--target", "redis1", "--maxclients", str(wanted), audit=audit)
    assert dry.code == 0, dry.stderr
    assert dry.doc is not None and dry.doc["dry_run"] is True
    (action,) = dry.doc["plan"]["actions"]
    assert action["parameters"] == {"maxclients": wanted}
    assert action["guard"] == {"maxclients": redis1_maxclients}
    assert _maxclients("redis1") == redis1_maxclients
    assert lab.audit_records(audit) == []


def test_raise_maxclients_and_verify(
    redis1_maxclients: int, tmp_path: Path, lab_plan: dict[str, Any]
) -> None:
    audit = tmp_path / "audit.jsonl"
    sized = lab_plan["redis"]["redis1"]
    planned, demand = sized["settings"]["maxclients"], sized["client_demand"]
    wanted = max(planned, redis1_maxclients) + 10
    done = lab.run(
        "redis-raise-maxclients", "--target", "redis1", "--maxclients", str(wanted), audit=audit, yes=True
    )
    assert done.code == 0, done.stdout + done.stderr
    assert done.doc is not None and done.doc["verified"] is True, done.doc
    assert _maxclients("redis1") == wanted
    (record,) = lab.outcomes(audit)
    assert (record["runbook"], record["action"]) == ("redis-raise-maxclients", "config_set_maxclients")
    assert record["target"] == f"redis@{address('redis1')}:6379"
    assert record["result"] == f"maxclients {redis1_maxclients} -> {wanted}"
    assert any(f"redis_ops_slots: {wanted - 2 * demand}" in n for n in done.doc["plan"]["notes"]), done.doc
    lab.no_secret(done.stdout, done.stderr, audit.read_text())
    # Run again: already there, nothing to do.
    again = lab.run("redis-raise-maxclients", "--target", "redis1", "--maxclients", str(wanted), audit=audit)
    assert (again.code, again.doc and again.doc["plan"]["actions"]) == (0, []), again.stderr


def test_above_the_open_file_limit_is_refused(redis1_maxclients: int, tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    refused = lab.run(
        "redis-raise-maxclients", "--target", "redis1", "--maxclients", "5000", audit=audit, yes=True
    )
    lab.assert_one_line_error(refused, 2, "above what its open-file limit holds (1024 descriptors - 32")
    assert _maxclients("redis1") == redis1_maxclients
    assert lab.audit_records(audit) == []


# --- idle clients ---------------------------------------------------------------------------------


@pytest.fixture(params=["redis1", "redis2"])
def clients(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[redis.Redis], int]]:
    """Three idle connections of the app user and one busy one, all named NAME, on one Redis host."""
    host = str(request.param)
    idle = [_login(host, "app", "redis_app_password") for _ in range(3)]
    busy = _login(host, "app", "redis_app_password")
    for c in [*idle, busy]:
        c.client_setname(NAME)
    busy_id = int(busy.client_id())  # before the thread: one connection each
    stop = threading.Event()

    def keep_busy() -> None:
        while not stop.is_set():
            busy.ping()
            stop.wait(0.2)

    worker = threading.Thread(target=keep_busy, daemon=True)
    worker.start()
    try:
        yield host, idle, busy_id
    finally:
        stop.set()
        worker.join(timeout=5)
        for c in [*idle, busy]:
            c.close()


def _named_ids(host: str) -> set[int]:
    ops = _login(host, "toolkit", "redis_ops_password")
    try:
        return {int(c["id"]) for c in ops.client_list() if c.get("name") == NAME}
    finally:
        ops.close()


def test_kill_idle_clients_ends_only_the_idle_ones(
    clients: tuple[str, list[redis.Redis], int], tmp_path: Path
) -> None:
    host, idle, busy_id = clients
    idle_ids = {int(c.client_id()) for c in idle}
    time.sleep(3.5)  # CLIENT LIST counts idle time in whole seconds
    audit = tmp_path / "audit.jsonl"
    args = ("--target", host, "--older-than", "2s", "--application-name", NAME)
    dry = lab.run("redis-kill-idle-clients", *args, audit=audit)
    assert dry.code == 0, dry.stderr
    assert dry.doc is not None
    assert {a["parameters"]["id"] for a in dry.doc["plan"]["actions"]} == idle_ids
    assert {a["parameters"]["user"] for a in dry.doc["plan"]["actions"]} == {"app"}
    assert _named_ids(host) == idle_ids | {busy_id}
    assert lab.audit_records(audit) == []

    done = lab.run("redis-kill-idle-clients", *args, audit=audit, yes=True)
    assert done.code == 0, done.stdout + done.stderr
    assert done.doc is not None and done.doc["verified"] is True, done.doc
    assert _named_ids(host) == {busy_id}
    records = lab.outcomes(audit)
    assert sorted(r["parameters"]["id"] for r in records) == sorted(idle_ids)
    assert all(r["result"].startswith("killed client ") for r in records), records
    lab.no_secret(dry.stdout, done.stdout, audit.read_text())


def test_more_idle_clients_than_max_is_refused(
    clients: tuple[str, list[redis.Redis], int], tmp_path: Path
) -> None:
    host, idle, busy_id = clients
    time.sleep(3.5)
    audit = tmp_path / "audit.jsonl"
    refused = lab.run(
        "redis-kill-idle-clients",
        *("--target", host, "--older-than", "2s", "--application-name", NAME, "--max", "2"),
        audit=audit,
        yes=True,
    )
    lab.assert_one_line_error(refused, 2, "3 clients match, more than --max 2")
    assert _named_ids(host) == {int(c.client_id()) for c in idle} | {busy_id}
    assert lab.audit_records(audit) == []

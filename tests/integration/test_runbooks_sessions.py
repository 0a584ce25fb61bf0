"""terminate-idle-transactions and cancel-long-queries on the lab: create the condition, dry run (nothing
changes), act (only the targeted session changes), find the audit record."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration import runbooks_lab as lab

pytestmark = pytest.mark.integration


def _idle_in_transaction(application_name: str) -> tuple[psycopg.Connection[Any], int]:
    conn = lab.app()
    conn.execute("SELECT set_config('application_name', %s, false)", [application_name])
    pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    return conn, pid  # the transaction stays open: autocommit is off


def test_terminate_idle_transactions_ends_only_the_named_session(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    victim, victim_pid = _idle_in_transaction("rb-victim")
    bystander, bystander_pid = _idle_in_transaction("rb-bystander")
    try:
        time.sleep(2.5)
        args = ("--older-than", "2s", "--application-name", "rb-victim")

        dry = lab.run("terminate-idle-transactions", *args, audit=audit)
        assert dry.code == 0, dry.stderr
        assert [a["parameters"]["pid"] for a in dry.doc["plan"]["actions"]] == [victim_pid]
        assert lab.state_of(victim_pid) == "idle in transaction"
        assert lab.audit_records(audit) == []

        done = lab.run("terminate-idle-transactions", *args, audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert done.doc["verified"] is True
        assert lab.state_of(victim_pid) is None
        assert lab.state_of(bystander_pid) == "idle in transaction"
        assert bystander.execute("SELECT 1").fetchone() == (1,)
        (record,) = lab.audit_records(audit)
        assert record["runbook"] == "terminate-idle-transactions"
        assert record["action"] == "pg_terminate_backend"
        assert record["parameters"]["pid"] == victim_pid
        lab.no_secret(dry.stdout, done.stdout, audit.read_text())
    finally:
        for conn in (victim, bystander):
            conn.close()


def _sleeper(port: int, dbname: str, seconds: int, errors: list[BaseException], pids: list[int]) -> None:
    try:
        with lab.app(autocommit=True, port=port, dbname=dbname) as conn:
            pids.append(int(conn.execute("SELECT pg_backend_pid()").fetchone()[0]))  # type: ignore[index]
            conn.execute(f"SELECT pg_sleep({seconds})")
    except BaseException as exc:
        errors.append(exc)


def test_cancel_long_queries_cancels_only_the_pooled_database(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    victim_errors: list[BaseException] = []
    other_errors: list[BaseException] = []
    victim_pids: list[int] = []
    other_pids: list[int] = []
    victim = threading.Thread(target=_sleeper, args=(lab.PGB_PORT, "app", 30, victim_errors, victim_pids))
    # A query in a database PgBouncer does not serve: never touched.
    other = threading.Thread(target=_sleeper, args=(lab.PG_PORT, "postgres", 12, other_errors, other_pids))
    victim.start()
    other.start()
    try:
        time.sleep(2.0)
        (victim_pid,) = victim_pids
        (other_pid,) = other_pids

        dry = lab.run("cancel-long-queries", "--older-than", "1s", audit=audit)
        assert dry.code == 0, dry.stderr
        assert [a["parameters"]["pid"] for a in dry.doc["plan"]["actions"]] == [victim_pid]
        assert lab.state_of(victim_pid) == "active"
        assert lab.audit_records(audit) == []

        done = lab.run("cancel-long-queries", "--older-than", "1s", "--grace", "3s", audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert done.doc["verified"] is True
        victim.join(10)
        assert len(victim_errors) == 1 and isinstance(victim_errors[0], psycopg.errors.QueryCanceled)
        assert lab.state_of(other_pid) == "active"
        (record,) = lab.audit_records(audit)
        assert (record["runbook"], record["action"]) == ("cancel-long-queries", "pg_cancel_backend")
        assert record["parameters"]["pid"] == victim_pid
    finally:
        with lab.app(autocommit=True, port=lab.PG_PORT) as conn:
            for pid in other_pids:
                conn.execute("SELECT pg_cancel_backend(%s)", [pid])
        victim.join(35)
        other.join(15)


def test_negative_and_malformed_durations_are_refused(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    for value in ("-1s", "soon"):
        result = lab.run("terminate-idle-transactions", "--older-than", value, audit=audit, yes=True)
        lab.assert_one_line_error(result, 64, "is not a duration")
    assert lab.audit_records(audit) == []

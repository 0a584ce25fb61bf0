"""The PgBouncer runbooks on the lab: pause/resume (and a failed PAUSE that must leave every pool
resumed), reload, reconnect, resize, kill/disable/enable. Each test creates the condition, runs the
dry run (nothing changes), acts (only the target changes), and finds the audit record. Each leaves the
lab PgBouncer resumed, enabled and at its file's settings."""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration import runbooks_lab as lab
from tests.integration.conftest import BIN, LAB_INVENTORY

pytestmark = pytest.mark.integration
IGNORED = {"default_pool_size"}  # the one setting these tests change on purpose


@pytest.fixture(autouse=True)
def restored() -> Iterator[None]:
    with lab.lab_restored():
        yield


def _query_in_thread(conn: psycopg.Connection[Any], sql: str, out: list[Any]) -> threading.Thread:
    def work() -> None:
        try:
            out.append(conn.execute(sql).fetchone())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _waiting(database: str = "app") -> int:
    return sum(int(r["cl_waiting"]) for r in lab.show("SHOW POOLS") if r["database"] == database)


def test_pause_then_resume_holds_and_releases_clients(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    dry = lab.run("pgbouncer-pause", audit=audit)
    assert dry.code == 0, dry.stderr
    assert [a["action"] for a in dry.doc["plan"]["actions"]] == ["PAUSE"]
    assert lab.db_flags() == (0, 0)

    client = lab.app(autocommit=True)
    client.execute("SELECT 1")
    paused = lab.run("pgbouncer-pause", audit=audit, yes=True)
    assert paused.code == 0, paused.stdout + paused.stderr
    assert paused.doc["verified"] is True
    assert lab.db_flags() == (1, 0)
    out: list[Any] = []
    queued = _query_in_thread(client, "SELECT 42", out)
    time.sleep(1.0)
    assert out == [] and _waiting() >= 1  # held, not refused

    dry_resume = lab.run("pgbouncer-resume", audit=audit)
    assert dry_resume.code == 0
    assert [a["action"] for a in dry_resume.doc["plan"]["actions"]] == ["RESUME"]
    assert lab.db_flags() == (1, 0)

    resumed = lab.run("pgbouncer-resume", audit=audit, yes=True)
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert lab.db_flags() == (0, 0)
    queued.join(5)  # at once: not after server_login_retry (see pgb.pause)
    assert out == [(42,)]
    client.close()
    assert [(r["runbook"], r["action"]) for r in lab.outcomes(audit)] == [
        ("pgbouncer-pause", "PAUSE"),
        ("pgbouncer-resume", "RESUME"),
    ]
    nothing = lab.run("pgbouncer-resume", audit=audit, yes=True)
    assert nothing.code == 0 and "nothing to do" in nothing.stderr
    lab.no_secret(paused.stdout, resumed.stdout, audit.read_text())


def test_pause_with_a_transaction_open_times_out_and_leaves_every_pool_resumed(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    holder = lab.app()
    holder.execute("SELECT 1")  # a transaction stays open: PAUSE must wait for it
    try:
        start = time.monotonic()
        result = lab.run("pgbouncer-pause", "--timeout", "1", audit=audit, yes=True)
        assert result.code != 0, result.stdout
        assert time.monotonic() - start < 15
        assert result.doc["verified"] is False
        assert "every PgBouncer was resumed" in result.results()[0]["result"]
        assert lab.db_flags() == (0, 0)
        with lab.app(autocommit=True) as conn:  # new clients get through at once
            assert conn.execute("SELECT 7").fetchone() == (7,)
        assert not [
            c for c in lab.show("SHOW CLIENTS") if c["database"] == "pgbouncer" and c["state"] == "waiting"
        ]
        records = lab.outcomes(audit)
        assert [r["action"] for r in records] == ["RESUME", "PAUSE"]
        assert records[0]["result"].startswith("resumed") and "app" in records[0]["result"]
        assert records[1]["result"].startswith("failed:")
    finally:
        holder.close()


def test_pause_refuses_while_an_old_transaction_is_open(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    holder = lab.app()
    holder.execute("SELECT 1")
    try:
        time.sleep(1.5)
        result = lab.run("pgbouncer-pause", "--older-than", "1s", audit=audit, yes=True)
        lab.assert_one_line_error(result, 2, "would hold the PAUSE")  # refused by the live state
        assert lab.db_flags() == (0, 0)
        assert lab.audit_records(audit) == []
    finally:
        holder.close()


def test_reload_reverts_a_live_set_and_reports_the_diff(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = lab.config()
    drifted = int(before["default_pool_size"]) + 3
    with lab.admin() as console:
        console.command(f"SET default_pool_size = {drifted}")
    dry = lab.run("pgbouncer-reload", audit=audit)
    assert dry.code == 0
    assert any(f"default_pool_size live '{drifted}'" in n for n in dry.doc["plan"]["notes"])
    assert lab.config()["default_pool_size"] == str(drifted)

    done = lab.run("pgbouncer-reload", audit=audit, yes=True)
    assert done.code == 0, done.stdout + done.stderr
    after = lab.config()
    assert after == before
    (result,) = done.results()
    assert (
        result["result"]
        == f"reloaded; changed: default_pool_size: {drifted} -> {before['default_pool_size']}"
    )
    (record,) = lab.outcomes(audit)
    assert (record["runbook"], record["action"]) == ("pgbouncer-reload", "RELOAD")


def test_reconnect_replaces_server_connections_and_keeps_clients(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    client = lab.app(autocommit=True)
    try:
        client.execute("SELECT 1")
        old = {int(r["remote_pid"]) for r in lab.show("SHOW SERVERS") if r["database"] == "app"}
        assert old
        dry = lab.run("pgbouncer-reconnect", "--database", "app", audit=audit)
        assert dry.code == 0
        assert [a["action"] for a in dry.doc["plan"]["actions"]] == ["RECONNECT", "WAIT_CLOSE"]
        assert old <= lab.backend_pids()

        done = lab.run("pgbouncer-reconnect", "--database", "app", audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert not (old & lab.backend_pids())  # every old server connection is gone
        assert client.execute("SELECT 2").fetchone() == (2,)  # the client kept its session
        assert [r["action"] for r in lab.outcomes(audit)] == ["RECONNECT", "WAIT_CLOSE"]
    finally:
        client.close()


def _load(stop: threading.Event, errors: list[BaseException], done: list[int]) -> None:
    try:
        with lab.app(autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("SELECT pg_sleep(0.05)")
                done.append(1)
    except BaseException as exc:
        errors.append(exc)


def test_resize_pool_under_load_within_the_budget(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = lab.config()
    size = int(before["default_pool_size"]) + 2
    stop, errors, done = threading.Event(), [], []  # type: ignore[var-annotated]
    workers = [threading.Thread(target=_load, args=(stop, errors, done)) for _ in range(8)]
    for w in workers:
        w.start()
    try:
        dry = lab.run("pgbouncer-resize-pool", "--size", str(size), audit=audit)
        assert dry.code == 0, dry.stderr
        assert any(f"pgbouncer_default_pool_size: {size}" in n for n in dry.doc["plan"]["notes"])
        assert lab.config() == before

        result = lab.run("pgbouncer-resize-pool", "--size", str(size), audit=audit, yes=True)
        assert result.code == 0, result.stdout + result.stderr
        after = lab.config()
        assert after["default_pool_size"] == str(size)
        assert {k: v for k, v in after.items() if k not in IGNORED} == {
            k: v for k, v in before.items() if k not in IGNORED
        }
        (record,) = lab.outcomes(audit)
        assert (record["action"], record["parameters"]["default_pool_size"]) == ("SET", size)
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert errors == [] and len(done) > 0


def test_resize_beyond_the_budget_is_refused(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = lab.config()
    result = lab.run("pgbouncer-resize-pool", "--size", "1000", audit=audit, yes=True)
    lab.assert_one_line_error(result, 2, "refused, nothing changed")  # refused by the live state
    assert "exceeds the budget" in result.stderr
    assert lab.config() == before
    assert lab.audit_records(audit) == []


def test_kill_database_drops_its_clients_and_leaves_it_paused(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    client = lab.app(autocommit=True)
    client.execute("SELECT 1")
    try:
        dry = lab.run("pgbouncer-kill-database", "--database", "app", audit=audit)
        assert dry.code == 0
        assert any("paused until RESUME" in n for n in dry.doc["plan"]["notes"])
        assert client.execute("SELECT 2").fetchone() == (2,)
        assert lab.db_flags() == (0, 0)

        done = lab.run("pgbouncer-kill-database", "--database", "app", audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert lab.db_flags() == (1, 0)
        with pytest.raises(psycopg.OperationalError):
            client.execute("SELECT 3")
        assert lab.show("SHOW VERSION")  # the admin console itself is untouched
        (record,) = lab.outcomes(audit)
        assert (record["runbook"], record["action"], record["parameters"]) == (
            "pgbouncer-kill-database",
            "KILL",
            {"database": "app"},
        )
        resumed = lab.run("pgbouncer-resume", "--database", "app", audit=audit, yes=True)
        assert resumed.code == 0 and lab.db_flags() == (0, 0)
    finally:
        client.close()


def test_disable_then_enable_one_database(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    connected = lab.app(autocommit=True)
    try:
        dry = lab.run("pgbouncer-disable", "--database", "app", audit=audit)
        assert dry.code == 0 and lab.db_flags() == (0, 0)

        done = lab.run("pgbouncer-disable", "--database", "app", audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert lab.db_flags() == (0, 1)
        with pytest.raises(psycopg.OperationalError):
            lab.app(autocommit=True).close()
        assert connected.execute("SELECT 1").fetchone() == (1,)  # connected clients stay

        enabled = lab.run("pgbouncer-enable", "--database", "app", audit=audit, yes=True)
        assert enabled.code == 0 and lab.db_flags() == (0, 0)
        with lab.app(autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert [(r["runbook"], r["action"]) for r in lab.outcomes(audit)] == [
            ("pgbouncer-disable", "DISABLE"),
            ("pgbouncer-enable", "ENABLE"),
        ]
    finally:
        connected.close()


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("pgbouncer-kill-database", (), "needs --database"),
        ("pgbouncer-disable", ("--database", "pgbouncer"), "is the admin console"),
        ("pgbouncer-enable", ("--database", "nosuchdb"), "serves no database 'nosuchdb'"),
        ("pgbouncer-pause", ("--target", "nosuchhost"), "unknown target 'nosuchhost'"),
        ("pgbouncer-resize-pool", ("--size", "-3"), "--size: '-3' is not a whole number"),
        ("pgbouncer-resize-pool", ("--size", "0"), "--size: '0' must be between 1 and"),
        ("pgbouncer-resize-pool", ("--size", "\u0665"), "is not a whole number"),
        ("pgbouncer-pause", ("--older-than", "0s"), "--older-than: '0s' must be above 0 s"),
        ("pgbouncer-pause", ("--timeout", "nan"), "--timeout: 'nan' is not a number"),
        ("pgbouncer-pause", ("--timeout", "inf"), "--timeout: 'inf' is not a number"),
        ("pgbouncer-pause", ("--timeout", "1e999"), "--timeout: '1e999' is not a number"),
        ("pgbouncer-pause", ("--timeout", "99999"), "--timeout: '99999' must be between"),
    ],
)
def test_bad_input_changes_nothing(tmp_path: Path, name: str, args: tuple[str, ...], fragment: str) -> None:
    audit = tmp_path / "audit.jsonl"
    before = (lab.config(), lab.db_flags())
    result = lab.run(name, *args, audit=audit, yes=True)
    lab.assert_one_line_error(result, 64, fragment)
    assert (lab.config(), lab.db_flags()) == before
    assert lab.audit_records(audit) == []


def _on_a_terminal(typed: str, *args: str) -> str:
    """Run the CLI with a terminal as stdin (through script(1)) and type ``typed`` at the prompt."""
    command = " ".join([str(BIN / "toolkit"), "runbook", "run", "-i", str(LAB_INVENTORY), *args])
    proc = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        input=typed + "\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return proc.stdout


def test_the_confirmation_must_type_the_database_name(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    args = ("pgbouncer-disable", "--database", "app", "--audit-log", str(audit))
    out = _on_a_terminal("yes", *args)
    assert "type the database name (app)" in out and "nothing changed" in out
    assert out.index("DISABLE(database=app)") < out.index("type the database name")  # plan first
    assert lab.db_flags() == (0, 0) and lab.audit_records(audit) == []

    out = _on_a_terminal("app", *args)
    assert lab.db_flags() == (0, 1), out
    assert [r["action"] for r in lab.outcomes(audit)] == ["DISABLE"]

"""The PgBouncer runbooks from this machine on the lab's tier: pause/resume (and a failed PAUSE that must
leave every pool resumed), reload, reconnect, resize, kill/disable/enable. Each acts on the host it is
given (--target pgb1 or pgb2, every process of pgb2, or one with --process) and the test checks the
other host, and the other process, are untouched. Each creates the condition, runs the dry run (nothing
changes, the target is printed), acts, and finds the audit record naming the target. Each leaves every
PgBouncer process resumed, enabled and at its file's settings."""

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
from tests.integration.conftest import BIN, LAB_INVENTORY, address

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


def _waiting(host: str, database: str = "app") -> int:
    return sum(int(r["cl_waiting"]) for r in lab.show_host("SHOW POOLS", host) if r["database"] == database)


OTHER = {"pgb1": "pgb2", "pgb2": "pgb1"}


@pytest.mark.parametrize("host", ["pgb2", "pgb1"])
def test_pause_then_resume_one_host_leaves_the_other_alone(tmp_path: Path, host: str) -> None:
    audit = tmp_path / "audit.jsonl"
    other = OTHER[host]
    labels = [f"pgbouncer@{address(host)}:6432" + (f" process {n}" if n else "") for n in lab.processes(host)]
    dry = lab.run("pgbouncer-pause", "--target", host, audit=audit)
    assert dry.code == 0, dry.stderr
    assert [(a["action"], a["target"]) for a in dry.doc["plan"]["actions"]] == [("PAUSE", ", ".join(labels))]
    before = lab.tier()
    assert lab.host_flags(host) == {(0, 0)}

    client = lab.app(autocommit=True, pgbouncer=host)
    try:
        _pause_then_resume(host, other, labels, audit, before, client)
    finally:  # a failure leaves neither the client open nor the host paused for the next test
        client.close()
        if lab.host_flags(host) != {(0, 0)}:
            lab.run("pgbouncer-resume", "--target", host, audit=tmp_path / "cleanup.jsonl", yes=True)


def _pause_then_resume(
    host: str, other: str, labels: list[str], audit: Path, before: Any, client: Any
) -> None:
    """The body of the test above, run with its client (closed, and the host resumed, by the caller)."""
    client.execute("SELECT 1")
    paused = lab.run("pgbouncer-pause", "--target", host, audit=audit, yes=True)
    assert paused.code == 0, paused.stdout + paused.stderr
    assert paused.doc["verified"] is True
    assert lab.host_flags(host) == {(1, 0)}  # every process of the host
    assert {k: v for k, v in lab.tier().items() if k[0] == other} == {
        k: v for k, v in before.items() if k[0] == other
    }
    with lab.app(autocommit=True, pgbouncer=other) as through_other:
        assert through_other.execute("SELECT 5").fetchone() == (5,)  # the other host serves on
    out: list[Any] = []
    queued = _query_in_thread(client, "SELECT 42", out)
    time.sleep(1.0)
    assert out == [] and _waiting(host) >= 1  # held, not refused

    resumed = lab.run("pgbouncer-resume", "--target", host, audit=audit, yes=True)
    assert resumed.code == 0, resumed.stdout + resumed.stderr
    assert lab.host_flags(host) == {(0, 0)}
    queued.join(5)  # at once: not after server_login_retry (see pgb.pause)
    assert out == [(42,)]
    records = lab.outcomes(audit)
    assert [(r["runbook"], r["action"], r["target"]) for r in records] == [
        ("pgbouncer-pause", "PAUSE", ", ".join(labels)),
        ("pgbouncer-resume", "RESUME", ", ".join(labels)),
    ]
    nothing = lab.run("pgbouncer-resume", "--target", host, audit=audit, yes=True)
    assert nothing.code == 0 and "nothing to do" in nothing.stderr
    lab.no_secret(paused.stdout, resumed.stdout, audit.read_text())


def test_pause_one_process_of_a_host_leaves_its_other_process_alone(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    assert lab.processes("pgb2") == [1, 2]
    dry = lab.run("pgbouncer-pause", "--target", "pgb2", "--process", "2", audit=audit)
    assert dry.code == 0, dry.stderr
    label = f"pgbouncer@{address('pgb2')}:6432 process 2"
    assert [a["target"] for a in dry.doc["plan"]["actions"]] == [label]
    done = lab.run("pgbouncer-pause", "--target", "pgb2", "--process", "2", audit=audit, yes=True)
    assert done.code == 0, done.stdout + done.stderr
    assert lab.db_flags("app", "pgb2", 2) == (1, 0)
    assert lab.db_flags("app", "pgb2", 1) == (0, 0)
    assert lab.db_flags("app", "pgb1") == (0, 0)
    resumed = lab.run("pgbouncer-resume", "--target", "pgb2", "--process", "2", audit=audit, yes=True)
    assert resumed.code == 0 and lab.host_flags("pgb2") == {(0, 0)}
    assert [r["target"] for r in lab.outcomes(audit)] == [label, label]  # PAUSE, RESUME


def test_pause_with_a_transaction_open_times_out_and_leaves_every_pool_resumed(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    holder = lab.app(pgbouncer="pgb1")
    holder.execute("SELECT 1")  # a transaction stays open: PAUSE must wait for it
    try:
        start = time.monotonic()
        result = lab.run("pgbouncer-pause", "--target", "pgb1", "--timeout", "1", audit=audit, yes=True)
        assert result.code != 0, result.stdout
        print(f"failed PAUSE with resume: {time.monotonic() - start:.1f} s")
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
        result = lab.run("pgbouncer-pause", "--target", "pgb1", "--older-than", "1s", audit=audit, yes=True)
        lab.assert_one_line_error(result, 2, "would hold the PAUSE")  # refused by the live state
        assert lab.db_flags() == (0, 0)
        assert lab.audit_records(audit) == []
    finally:
        holder.close()


def test_reload_over_the_network_reverts_a_live_set_on_the_named_host_only(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = {k: lab.config(*k) for k in lab.PROCESSES}
    drifted = {k: int(c["default_pool_size"]) + 3 for k, c in before.items()}
    for (host, number), size in drifted.items():
        with lab.admin(host, number) as console:
            console.command(f"SET default_pool_size = {size}")
    dry = lab.run("pgbouncer-reload", "--target", "pgb2", audit=audit)
    assert dry.code == 0, dry.stderr
    assert [a["target"] for a in dry.doc["plan"]["actions"]] == [
        f"pgbouncer@{address('pgb2')}:6432 process {n}" for n in (1, 2)
    ]
    assert any("the config file is on pgb2, not on this machine" in n for n in dry.doc["plan"]["notes"])
    assert lab.config("pgb2", 2)["default_pool_size"] == str(drifted[("pgb2", 2)])

    done = lab.run("pgbouncer-reload", "--target", "pgb2", audit=audit, yes=True)
    assert done.code == 0, done.stdout + done.stderr
    for number in (1, 2):
        assert lab.config("pgb2", number) == before[("pgb2", number)]
    assert lab.config("pgb1")["default_pool_size"] == str(drifted[("pgb1", 0)])  # untouched
    old = before[("pgb2", 1)]["default_pool_size"]
    assert [r["result"] for r in done.results()] == [
        f"reloaded; changed: default_pool_size: {drifted[('pgb2', n)]} -> {old}" for n in (1, 2)
    ]
    assert [(r["runbook"], r["action"]) for r in lab.outcomes(audit)] == [("pgbouncer-reload", "RELOAD")] * 2


def test_reconnect_replaces_the_named_hosts_server_connections_only(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    clients = [lab.app(autocommit=True, pgbouncer=h) for h in ("pgb1", "pgb2")]
    try:
        for client in clients:
            client.execute("SELECT 1")

        def servers(host: str) -> set[int]:
            return {
                int(r["remote_pid"]) for r in lab.show_host("SHOW SERVERS", host) if r["database"] == "app"
            }

        old, kept = servers("pgb2"), servers("pgb1")
        assert old and kept
        dry = lab.run("pgbouncer-reconnect", "--target", "pgb2", "--database", "app", audit=audit)
        assert dry.code == 0
        assert [a["action"] for a in dry.doc["plan"]["actions"]] == ["RECONNECT", "WAIT_CLOSE"] * 2
        assert old <= lab.backend_pids()

        done = lab.run("pgbouncer-reconnect", "--target", "pgb2", "--database", "app", audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert not (old & lab.backend_pids())  # every old server connection of pgb2 is gone
        assert kept <= servers("pgb1")  # pgb1's are the same ones
        assert clients[1].execute("SELECT 2").fetchone() == (2,)  # the client kept its session
        assert [r["action"] for r in lab.outcomes(audit)] == ["RECONNECT", "WAIT_CLOSE"] * 2
    finally:
        for client in clients:
            client.close()


def _load(host: str, stop: threading.Event, errors: list[BaseException], done: list[int]) -> None:
    try:
        with lab.app(autocommit=True, pgbouncer=host) as conn:
            while not stop.is_set():
                conn.execute("SELECT pg_sleep(0.05)")
                done.append(1)
    except BaseException as exc:
        errors.append(exc)


@pytest.mark.parametrize("host", ["pgb2", "pgb1"])
def test_resize_pool_under_load_on_the_named_host_only(tmp_path: Path, host: str) -> None:
    audit = tmp_path / "audit.jsonl"
    before = {k: lab.config(*k) for k in lab.PROCESSES}
    size = int(before[lab.PROCESSES[0]]["default_pool_size"]) + 2
    stop, errors, done = threading.Event(), [], []  # type: ignore[var-annotated]
    workers = [threading.Thread(target=_load, args=(host, stop, errors, done)) for _ in range(8)]
    for w in workers:
        w.start()
    try:
        dry = lab.run("pgbouncer-resize-pool", "--target", host, "--size", str(size), audit=audit)
        assert dry.code == 0, dry.stderr
        assert any(f"pgbouncer_default_pool_size: {size}" in n for n in dry.doc["plan"]["notes"])
        assert {k: lab.config(*k) for k in lab.PROCESSES} == before

        result = lab.run(
            "pgbouncer-resize-pool", "--target", host, "--size", str(size), audit=audit, yes=True
        )
        assert result.code == 0, result.stdout + result.stderr
        for key in lab.PROCESSES:
            after = lab.config(*key)
            want = str(size) if key[0] == host else before[key]["default_pool_size"]
            assert after["default_pool_size"] == want, key
            assert {k: v for k, v in after.items() if k not in IGNORED} == {
                k: v for k, v in before[key].items() if k not in IGNORED
            }
        records = lab.outcomes(audit)
        assert [(r["action"], r["parameters"]["default_pool_size"]) for r in records] == [
            ("SET", size)
        ] * len(lab.processes(host))
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert errors == [] and len(done) > 0


def test_resize_beyond_the_budget_is_refused(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = lab.tier()
    result = lab.run("pgbouncer-resize-pool", "--size", "1000", audit=audit, yes=True)
    lab.assert_one_line_error(result, 2, "refused, nothing changed")  # refused by the live state
    assert "exceeds the budget" in result.stderr
    assert lab.tier() == before
    assert lab.audit_records(audit) == []


def test_kill_database_on_one_host_drops_its_clients_and_leaves_the_other_host_serving(
    tmp_path: Path,
) -> None:
    audit = tmp_path / "audit.jsonl"
    client = lab.app(autocommit=True, pgbouncer="pgb2")
    client.execute("SELECT 1")
    try:
        dry = lab.run("pgbouncer-kill-database", "--target", "pgb2", "--database", "app", audit=audit)
        assert dry.code == 0
        assert any("paused until RESUME" in n for n in dry.doc["plan"]["notes"])
        assert client.execute("SELECT 2").fetchone() == (2,)
        assert lab.host_flags("pgb2") == {(0, 0)}

        done = lab.run(
            "pgbouncer-kill-database", "--target", "pgb2", "--database", "app", audit=audit, yes=True
        )
        assert done.code == 0, done.stdout + done.stderr
        assert lab.host_flags("pgb2") == {(1, 0)}
        assert lab.db_flags("app", "pgb1") == (0, 0)
        with pytest.raises(psycopg.OperationalError):
            client.execute("SELECT 3")
        with lab.app(autocommit=True, pgbouncer="pgb1") as conn:
            assert conn.execute("SELECT 4").fetchone() == (4,)
        assert lab.show("SHOW VERSION", "pgb2", 1)  # the admin console itself is untouched
        records = lab.outcomes(audit)
        assert {(r["runbook"], r["action"], tuple(r["parameters"].items())) for r in records} == {
            ("pgbouncer-kill-database", "KILL", (("database", "app"),))
        }
        assert len(records) == 2  # one per process of pgb2
        resumed = lab.run("pgbouncer-resume", "--target", "pgb2", "--database", "app", audit=audit, yes=True)
        assert resumed.code == 0 and lab.host_flags("pgb2") == {(0, 0)}
    finally:
        client.close()


def test_disable_then_enable_one_database_on_one_host(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    connected = lab.app(autocommit=True, pgbouncer="pgb2")
    try:
        dry = lab.run("pgbouncer-disable", "--target", "pgb2", "--database", "app", audit=audit)
        assert dry.code == 0 and lab.host_flags("pgb2") == {(0, 0)}

        done = lab.run("pgbouncer-disable", "--target", "pgb2", "--database", "app", audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert lab.host_flags("pgb2") == {(0, 1)}
        assert lab.db_flags("app", "pgb1") == (0, 0)
        for _ in range(4):  # whichever process a new connection reaches
            with pytest.raises(psycopg.OperationalError):
                lab.app(autocommit=True, pgbouncer="pgb2").close()
        lab.app(autocommit=True, pgbouncer="pgb1").close()
        assert connected.execute("SELECT 1").fetchone() == (1,)  # connected clients stay

        enabled = lab.run("pgbouncer-enable", "--target", "pgb2", "--database", "app", audit=audit, yes=True)
        assert enabled.code == 0 and lab.host_flags("pgb2") == {(0, 0)}
        with lab.app(autocommit=True, pgbouncer="pgb2") as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert [(r["runbook"], r["action"]) for r in lab.outcomes(audit)] == [
            ("pgbouncer-disable", "DISABLE"),
            ("pgbouncer-disable", "DISABLE"),
            ("pgbouncer-enable", "ENABLE"),
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
        ("pgbouncer-pause", ("--process", "2"), "add --target HOST"),
        ("pgbouncer-pause", ("--target", "redis1", "--process", "1"), "add --target HOST"),
        ("pgbouncer-pause", ("--target", "pgb1", "--process", "2"), "pgb1 runs one PgBouncer process"),
        ("pgbouncer-pause", ("--target", "pgb2", "--process", "3"), "pick one of 1-2"),
        ("pgbouncer-pause", ("--target", "pgb2", "--process", "x"), "--process: 'x' is not a whole number"),
    ],
)
def test_bad_input_changes_nothing(tmp_path: Path, name: str, args: tuple[str, ...], fragment: str) -> None:
    audit = tmp_path / "audit.jsonl"
    before = lab.tier()
    result = lab.run(name, *args, audit=audit, yes=True)
    lab.assert_one_line_error(result, 64, fragment)
    assert lab.tier() == before
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
    args = ("pgbouncer-disable", "--target", "pgb1", "--database", "app", "--audit-log", str(audit))
    out = _on_a_terminal("yes", *args)
    assert "type the database name (app)" in out and "nothing changed" in out
    assert out.index("DISABLE(database=app)") < out.index("type the database name")  # plan first
    assert f"on pgbouncer@{address('pgb1')}:6432" in out  # the question names the target
    assert lab.db_flags() == (0, 0) and lab.audit_records(audit) == []

    out = _on_a_terminal("app", *args)
    assert lab.db_flags() == (0, 1), out
    assert lab.host_flags("pgb2") == {(0, 0)}
    assert [r["action"] for r in lab.outcomes(audit)] == ["DISABLE"]

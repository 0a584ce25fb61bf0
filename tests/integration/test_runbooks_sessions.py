"""terminate-idle-transactions and cancel-long-queries on the lab: create the condition, dry run (nothing
changes), act (only the targeted session changes), find the audit record."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration import runbooks_lab as lab
from tests.integration.conftest import address
from toolkit.runbooks import cancel_long, terminate_idle
from toolkit.runbooks.base import RunOptions
from toolkit.runbooks.execute import act_and_verify

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
        (record,) = lab.outcomes(audit)
        assert record["runbook"] == "terminate-idle-transactions"
        assert record["action"] == "pg_terminate_backend"
        assert record["parameters"]["pid"] == victim_pid
        lab.no_secret(dry.stdout, done.stdout, audit.read_text())
    finally:
        for conn in (victim, bystander):
            conn.close()


def _sleeper(pooled: bool, seconds: int, errors: list[BaseException], pids: list[int]) -> None:
    """A long query: the app's through pgb1, or the monitoring role's in the postgres database."""
    try:
        with lab.app(autocommit=True) if pooled else lab.direct(autocommit=True, dbname="postgres") as conn:
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
    victim = threading.Thread(target=_sleeper, args=(True, 30, victim_errors, victim_pids))
    # A query in a database PgBouncer does not serve: never touched.
    other = threading.Thread(target=_sleeper, args=(False, 12, other_errors, other_pids))
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
        (record,) = lab.outcomes(audit)
        assert (record["runbook"], record["action"]) == ("cancel-long-queries", "pg_cancel_backend")
        assert record["parameters"]["pid"] == victim_pid
    finally:
        for pid in other_pids:
            lab.cancel(pid)
        victim.join(35)
        other.join(15)


def test_negative_and_malformed_durations_are_refused(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    for value in ("-1s", "soon", "nan", "inf", "1e3"):
        result = lab.run("terminate-idle-transactions", "--older-than", value, audit=audit, yes=True)
        lab.assert_one_line_error(result, 64, "is not a duration")
    assert lab.audit_records(audit) == []


# --- a session that changed between plan and act is skipped, never signalled ----------------------


def _query_start(pid: int) -> str:
    with lab.direct(autocommit=True, dbname="postgres") as conn:
        row = conn.execute("SELECT query_start FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        return "" if row is None or row[0] is None else str(row[0].isoformat())  # as the guard has it


def test_terminate_skips_an_idle_transaction_that_ran_another_query_since_the_plan(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    victim = lab.app()  # through pgb1: one transaction keeps one server connection
    victim.execute("SELECT set_config('application_name', 'rb-changed', false)")
    pid = int(victim.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    try:
        time.sleep(2.5)
        ctx = lab.context(audit)
        opts = RunOptions(older_than=2.0, application_name="rb-changed")
        plan = terminate_idle.plan(ctx, opts)
        assert [a.args["pid"] for a in plan.actions] == [pid]

        victim.execute("SELECT 2")  # the same transaction runs another query, and is idle again
        assert lab.state_of(pid) == "idle in transaction"
        outcome = act_and_verify(terminate_idle, ctx, opts, plan)

        assert outcome.results == [] and outcome.failed == []
        ((action, why),) = outcome.skipped
        assert action.args["pid"] == pid and "query_start changed" in why
        assert outcome.ok and outcome.verified is True
        assert lab.state_of(pid) == "idle in transaction"  # alive, its transaction intact
        assert victim.execute("SELECT 3").fetchone() == (3,)
        (record,) = lab.outcomes(audit)
        assert record["result"].startswith(f"skipped: pid {pid} not signalled")
        assert record["guard"]["query_start"] == action.guard["query_start"]
    finally:
        victim.close()


def test_cancel_with_terminate_skips_a_new_query_on_the_planned_pid(tmp_path: Path) -> None:
    """The defect of the issue: --terminate ended a new query that happened to run on the planned pid."""
    audit = tmp_path / "audit.jsonl"
    conn = lab.app()  # both queries in one transaction: one server connection through pgb1
    pid = int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    errors: list[BaseException] = []

    def two_queries() -> None:
        try:
            conn.execute("SELECT pg_sleep(3)")  # the long query the plan sees
            conn.execute("SELECT pg_sleep(20)")  # the next one, on the same connection and pid
        except BaseException as exc:
            errors.append(exc)

    worker = threading.Thread(target=two_queries)
    worker.start()
    try:
        time.sleep(1.5)
        ctx = lab.context(audit)
        opts = RunOptions(older_than=1.0, database="app", grace=1.0, terminate=True)
        plan = cancel_long.plan(ctx, opts)
        assert [a.args["pid"] for a in plan.actions] == [pid]
        first = plan.actions[0].guard["query_start"]
        deadline = time.monotonic() + 10
        while _query_start(pid) in ("", first) or lab.state_of(pid) != "active":
            assert time.monotonic() < deadline, "the second query never started"
            time.sleep(0.1)

        outcome = act_and_verify(cancel_long, ctx, opts, plan)

        ((_, why),) = outcome.skipped
        assert "runs another query now (query_start changed)" in why
        assert outcome.results == [] and outcome.ok
        assert lab.state_of(pid) == "active"  # the new query runs on: neither cancelled nor terminated
        assert errors == []
        (record,) = lab.outcomes(audit)
        assert record["action"] == "pg_cancel_backend" and record["result"].startswith("skipped:")
    finally:
        lab.cancel(pid)
        worker.join(25)
        conn.close()


def test_terminate_acts_on_the_unchanged_session_and_leaves_the_changed_one(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    # Straight to db1 (as the monitoring role, limited to 2 connections: one here, one for the runbook):
    # a new transaction stays on the same backend. The other through pgb1, in its one transaction.
    changed = lab.direct()
    same = lab.app()
    for conn in (changed, same):
        conn.execute("SELECT set_config('application_name', 'rb-pair', false)")
    changed_pid = int(changed.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    same_pid = int(same.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    try:
        time.sleep(2.5)
        ctx = lab.context(audit)
        opts = RunOptions(older_than=2.0, application_name="rb-pair")
        plan = terminate_idle.plan(ctx, opts)
        assert sorted(a.args["pid"] for a in plan.actions) == sorted([changed_pid, same_pid])
        changed.commit()
        changed.execute("SELECT 1")  # a new transaction: xact_start changed
        outcome = act_and_verify(terminate_idle, ctx, opts, plan)
        assert [a.args["pid"] for a, _ in outcome.results] == [same_pid]
        ((skipped, why),) = outcome.skipped
        assert skipped.args["pid"] == changed_pid and "xact_start changed" in why
        assert outcome.verified is True
        assert lab.state_of(same_pid) is None
        assert lab.state_of(changed_pid) == "idle in transaction"
        assert sorted(r["result"].split(":")[0] for r in lab.outcomes(audit)) == ["signalled", "skipped"]
    finally:
        changed.close()
        same.close()


def test_the_cap_refuses_with_the_count_and_exit_2(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    conns = [lab.app() for _ in range(3)]
    try:
        for conn in conns:
            conn.execute("SELECT set_config('application_name', 'rb-cap', false)")
        time.sleep(1.5)
        args = ("--older-than", "1s", "--application-name", "rb-cap", "--max", "2")
        result = lab.run("terminate-idle-transactions", *args, audit=audit, yes=True)
        lab.assert_one_line_error(result, 2, "3 sessions match, more than --max 2; nothing was done")
        assert all(conn.execute("SELECT 1").fetchone() == (1,) for conn in conns)
        assert lab.audit_records(audit) == []
    finally:
        for conn in conns:
            conn.close()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0s", "must be above 0 s"),
        ("0", "must be above 0 s"),
        ("nan", "is not a duration"),
        ("inf", "is not a duration"),
        ("\u0665s", "is not a duration"),
        ("99999999h", "must be between 0 s and 30 days"),
    ],
)
def test_older_than_must_be_a_sane_positive_duration(tmp_path: Path, value: str, fragment: str) -> None:
    audit = tmp_path / "audit.jsonl"
    result = lab.run("cancel-long-queries", "--older-than", value, audit=audit, yes=True)
    lab.assert_one_line_error(result, 64, fragment)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--max", "0"), "--max: '0' must be between 1 and"),
        (("--max", "-5"), "--max: '-5' is not a whole number"),
        (("--max", "1e9"), "--max: '1e9' is not a whole number"),
        (("--rate", "nan"), "--rate: 'nan' is not a number"),
        (("--rate", "0"), "--rate: '0' must be above 0"),
        (("--timeout", "-1"), "--timeout: '-1' is not a number"),
        (("--grace", "inf"), "--grace: 'inf' is not a duration"),
    ],
)
def test_number_flags_are_refused_with_one_line(tmp_path: Path, args: tuple[str, ...], fragment: str) -> None:
    audit = tmp_path / "audit.jsonl"
    result = lab.run("terminate-idle-transactions", "--older-than", "5s", *args, audit=audit, yes=True)
    lab.assert_one_line_error(result, 64, fragment)


@pytest.mark.parametrize("log", ["/dev/null", "fifo", "dir", "link"])
def test_an_audit_log_that_swallows_records_is_refused_before_any_action(tmp_path: Path, log: str) -> None:
    victim, victim_pid = _idle_in_transaction("rb-audit")
    path = {
        "/dev/null": Path("/dev/null"),
        "fifo": tmp_path / "fifo",
        "dir": tmp_path,
        "link": tmp_path / "l",
    }[log]
    if log == "fifo":
        os.mkfifo(path)
    if log == "link":
        path.symlink_to("/dev/null")
    try:
        time.sleep(1.5)
        result = lab.run(
            "terminate-idle-transactions",
            "--older-than",
            "1s",
            "--application-name",
            "rb-audit",
            audit=path,
            yes=True,
        )
        lab.assert_one_line_error(result, 64, "not a regular file; nothing was done")
        assert lab.state_of(victim_pid) == "idle in transaction"
    finally:
        victim.close()


# --- attribution by address: which app node's request holds an idle transaction -------------------


def _request(node: str, ms: int, out: dict[str, Any]) -> None:
    """GET the demo's idle-transaction view on one app node: it holds a transaction open for ``ms``."""
    url = f"http://{address(node)}:8000/idle-transaction/?ms={ms}"
    try:
        with urllib.request.urlopen(url, timeout=ms / 1000 + 20) as response:
            out[node] = json.loads(response.read())
    except urllib.error.HTTPError as exc:  # a terminated request answers 500
        exc.close()  # it holds the response's socket: close it now, not whenever it is collected
        out[node] = exc
    except Exception as exc:
        out[node] = exc


def test_idle_transactions_are_attributed_to_the_app_node_by_address(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    answers: dict[str, Any] = {}
    requests = [
        threading.Thread(target=_request, args=(n, ms, answers))
        for n, ms in (("app1", 20000), ("app2", 20000))
    ]
    for r in requests:
        r.start()
    # From this machine, through pgb2 (whichever of its processes), calling itself app1: not app1.
    spoof = lab.app(pgbouncer="pgb2", application_name="app1")
    spoof_pid = int(spoof.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    try:
        time.sleep(2.5)
        dry = lab.run("terminate-idle-transactions", "--older-than", "2s", audit=audit)
        assert dry.code == 0, dry.stderr
        actions = {a["parameters"]["pid"]: a for a in dry.doc["plan"]["actions"]}
        by_node = {a["parameters"].get("app_node"): a for a in actions.values()}
        assert {"app1", "app2"} <= set(by_node), dry.stdout
        for node in ("app1", "app2"):
            action = by_node[node]
            assert action["parameters"]["application_name"] == node  # the demo names its sessions so
            assert f"held by app node {node} ({address(node)}:" in action["why"], action["why"]
        assert "app_node" not in actions[spoof_pid]["parameters"]
        assert f"held by {lab.CONTROLLER}:" in actions[spoof_pid]["why"]
        assert "through pgb2" in actions[spoof_pid]["why"]

        done = lab.run(
            "terminate-idle-transactions", "--older-than", "2s", "--app-node", "app1", audit=audit, yes=True
        )
        assert done.code == 0, done.stdout + done.stderr
        (record,) = lab.outcomes(audit)
        assert record["parameters"]["app_node"] == "app1"
        assert record["parameters"]["pid"] == by_node["app1"]["parameters"]["pid"]
        assert f"held by app node app1 ({address('app1')}:" in record["detail"]
        assert lab.state_of(by_node["app2"]["parameters"]["pid"]) == "idle in transaction"
        assert lab.state_of(spoof_pid) == "idle in transaction"
    finally:
        spoof.close()
        for r in requests:
            r.join(30)
    assert isinstance(answers["app1"], Exception)  # its transaction was ended under it
    assert answers["app2"]["node"] == "app2"  # untouched: it finished its request

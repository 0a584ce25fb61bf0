"""snapshot on the lab, and the refusals every runbook shares: an idle transaction and a lock wait are in
the bundle, no password is, the file is mode 0600, and the write is the one audited action."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration import runbooks_lab as lab
from tests.integration.conftest import BIN, address

pytestmark = pytest.mark.integration


def test_snapshot_bundles_the_live_state_without_secrets(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    out = tmp_path / "incident" / "snapshot.json"
    idle = lab.app()
    idle.execute("SELECT 1")  # idle in transaction through PgBouncer
    # Transaction-level advisory locks through pgb1: each transaction keeps its server connection.
    holder = lab.app()
    holder_pid = int(holder.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    holder.execute("SELECT pg_advisory_xact_lock(4242)")
    waiter = lab.app()
    waiter_pid = int(waiter.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]
    blocked = threading.Thread(
        target=lambda: waiter.execute("SELECT pg_advisory_xact_lock(4242)"), daemon=True
    )
    blocked.start()
    try:
        time.sleep(1.0)
        dry = lab.run("snapshot", "-o", str(out), audit=audit)
        assert dry.code == 0, dry.stderr
        assert not out.exists() and not out.parent.exists()
        assert lab.audit_records(audit) == []

        done = lab.run("snapshot", "-o", str(out), audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert done.doc["verified"] is True
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        text = out.read_text()
        bundle: dict[str, Any] = json.loads(text)
        lab.no_secret(text, done.stdout, audit.read_text())

        assert bundle["schema"] == "toolkit.snapshot/v1"
        pgb2 = f"pgbouncer@{address('pgb2')}:6432"
        assert sorted(bundle["pgbouncer"]) == sorted(  # every process of pgb2 on its own
            [f"pgbouncer@{address('pgb1')}:6432", f"{pgb2} process 1", f"{pgb2} process 2"]
        )
        for label, pgb in bundle["pgbouncer"].items():
            for show in ("VERSION", "CONFIG", "DATABASES", "POOLS", "CLIENTS", "SERVERS", "STATS", "LISTS"):
                assert isinstance(pgb[show], list), (label, show)
                # A process with no server connection open has no SERVERS row; pgb1's hold the locks.
                assert pgb[show] or (
                    show == "SERVERS" and "pgb1" not in label and address("pgb1") not in label
                ), (
                    label,
                    show,
                )
        assert {
            r["value"] for p in bundle["pgbouncer"].values() for r in p["CONFIG"] if r["key"] == "pidfile"
        } == {
            "/var/run/postgresql/pgbouncer.pid",
            "/var/run/postgresql/pgbouncer-2.pid",
        }
        states = {b["pid"]: b["state"] for b in bundle["postgres"]["pg_stat_activity"]}
        assert "idle in transaction" in states.values()
        (wait,) = [w for w in bundle["postgres"]["lock_waits"] if w["pid"] == waiter_pid]
        assert wait["blocked_by"] == [holder_pid]
        assert sorted(bundle["redis"]) == ["redis1", "redis2"]
        for redis_info in bundle["redis"].values():
            assert "connected_clients" in redis_info["info"]
        assert "findings" in bundle["doctor"] and bundle["doctor"]["status"] in {"ok", "warning", "critical"}
        (record,) = lab.outcomes(audit)  # the intent record precedes it
        assert (record["runbook"], record["action"], record["target"]) == (
            "snapshot",
            "write_snapshot",
            str(out),
        )
    finally:
        holder.rollback()
        blocked.join(5)
        waiter.rollback()
        for conn in (idle, holder, waiter):
            conn.close()


def test_snapshot_needs_an_output_file(tmp_path: Path) -> None:
    result = lab.run("snapshot", audit=tmp_path / "audit.jsonl", yes=True)
    lab.assert_one_line_error(result, 64, "needs -o FILE")


@pytest.mark.parametrize(
    ("name", "args", "fragment"),
    [
        ("no-such-runbook", (), "unknown runbook 'no-such-runbook'"),
        ("pgbouncer-unresponsive", (), "is a manual procedure"),
        ("terminate-idle-transactions", ("--older-than", "-5m"), "is not a duration"),
        ("cancel-long-queries", ("--older-than", "1s", "--grace", "-1s"), "is not a duration"),
        ("snapshot", ("-o", "x.json", "--target", "nosuchhost"), "unknown target 'nosuchhost'"),
    ],
)
def test_bad_input_gets_one_line_and_exit_64(
    tmp_path: Path, name: str, args: tuple[str, ...], fragment: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    before = lab.db_flags(), lab.config()
    result = lab.run(name, *args, audit=audit, yes=True)
    lab.assert_one_line_error(result, 64, fragment)
    assert (lab.db_flags(), lab.config()) == before
    assert not audit.exists()


def test_show_prints_every_runbook_page() -> None:
    listed = subprocess.run(
        [str(BIN / "toolkit"), "runbook", "list"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env={"COLUMNS": "300", "PATH": "/usr/bin:/bin"},
    ).stdout
    for name in ("pgbouncer-pause", "pgbouncer-unresponsive", "snapshot", "cache-flush-namespace"):
        assert name in listed
        page = subprocess.run(
            [str(BIN / "toolkit"), "runbook", "show", name],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        assert page.startswith(f"# {name}") and "## Verify" in page

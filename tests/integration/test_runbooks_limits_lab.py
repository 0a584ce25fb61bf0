"""pgbouncer-raise-max-client-conn and end-bypass-sessions on the lab: a dry run changes nothing, --yes
changes only what was planned, a value beyond the open-files limit is refused, and the lab is left as it
was (pgb1's max_client_conn set back, the test's role dropped)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.integration import runbooks_lab as lab
from tests.integration.conftest import DB_HOST, address, ssh_ok
from toolkit.adapters.pgbouncer import set_command

pytestmark = pytest.mark.integration

RAISE = "pgbouncer-raise-max-client-conn"
BYPASS = "end-bypass-sessions"
ROLE = "cron"  # a name of the lab's database_bypass_connections: a budgeted direct client


def _max_client_conn() -> dict[tuple[str, int], int]:
    """max_client_conn of every PgBouncer process of the lab."""
    return {(h, n): int(lab.config(h, n)["max_client_conn"]) for h, n in lab.PROCESSES}


def test_raise_max_client_conn_on_pgb1_within_the_open_files_limit(tmp_path: Path) -> None:
    audit = tmp_path / "audit.jsonl"
    before = _max_client_conn()
    original = before[("pgb1", 0)]
    wanted = original + 20
    try:
        dry = lab.run(RAISE, "--target", "pgb1", "--max-client-conn", str(wanted), audit=audit)
        assert dry.code == 0, dry.stderr
        (action,) = dry.doc["plan"]["actions"]
        assert action["target"] == "pgbouncer@198.18.0.11:6432"
        assert action["parameters"]["max_client_conn"] == wanted
        assert action["parameters"]["was"] == original
        largest = int(action["parameters"]["largest"])
        notes = " ".join(dry.doc["plan"]["notes"])
        assert "(live, /proc limits)" in notes, notes  # read on pgb1 over SSH, not taken from the plan
        assert "pgbouncer_max_client_conn" in notes
        assert _max_client_conn() == before
        assert lab.audit_records(audit) == []
        print(f"pgb1: max_client_conn {original}, largest that fits its open-files limit {largest}")

        refused = lab.run(
            RAISE, "--target", "pgb1", "--max-client-conn", str(largest + 1), audit=audit, yes=True
        )
        lab.assert_one_line_error(refused, 2, f"admits at most {largest}")
        assert "nothing changed" in refused.stderr
        assert _max_client_conn() == before
        assert lab.audit_records(audit) == []

        done = lab.run(RAISE, "--target", "pgb1", "--max-client-conn", str(wanted), audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert done.doc["verified"] is True, done.doc["verification"]
        assert f"= {wanted}" in done.doc["verification"]
        assert _max_client_conn() == {**before, ("pgb1", 0): wanted}  # pgb2's processes untouched
        (record,) = lab.outcomes(audit)
        assert (record["runbook"], record["action"]) == (RAISE, "SET")
        assert record["parameters"]["max_client_conn"] == wanted
        assert record["result"] == f"max_client_conn {original} -> {wanted}"
        lab.no_secret(dry.stdout, refused.stderr, done.stdout, audit.read_text())
    finally:
        with lab.admin("pgb1") as console:
            console.command(set_command("max_client_conn", original))
    assert _max_client_conn() == before


def _psql_as_role(sql: str) -> None:
    """Run SQL on db1 as the postgres superuser (local peer login); the SQL goes on stdin."""
    ssh_ok(DB_HOST, "sudo -n -u postgres psql -q -v ON_ERROR_STOP=1 -d postgres", stdin=sql)


@pytest.fixture
def bypass_role() -> Iterator[str]:
    """A login role named like a database_bypass_connections entry, with a fresh password; dropped after."""
    password = secrets.token_hex(16)
    drop = (
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{ROLE}';\n"
        f"DROP ROLE IF EXISTS {ROLE};\n"
    )
    _psql_as_role(drop + f"CREATE ROLE {ROLE} LOGIN CONNECTION LIMIT 2 PASSWORD '{password}';\n")
    try:
        yield password
    finally:
        _psql_as_role(drop)


def _direct(user: str, password: str, application_name: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=address(DB_HOST),
        port=lab.PG_PORT,
        user=user,
        password=password,
        dbname="app",
        autocommit=True,
        connect_timeout=5,
        application_name=application_name,
    )


def _pid(conn: psycopg.Connection[Any]) -> int:
    return int(conn.execute("SELECT pg_backend_pid()").fetchone()[0])  # type: ignore[index]


def test_end_bypass_sessions_ends_only_the_direct_sessions_of_the_role(
    tmp_path: Path, bypass_role: str
) -> None:
    audit = tmp_path / "audit.jsonl"
    victim = _direct(ROLE, bypass_role, "rb-bypass-cron")
    other = lab.direct(autocommit=True, application_name="rb-bypass-other")  # toolkit_monitor, direct
    pooled = lab.app(application_name="rb-bypass-pooled")  # through pgb1; the open transaction pins it
    try:
        victim_pid, other_pid, pooled_pid = _pid(victim), _pid(other), _pid(pooled)

        listing = lab.run(BYPASS, audit=audit)
        assert listing.code == 0, listing.stderr
        assert listing.doc["plan"]["actions"] == []
        notes = listing.doc["plan"]["notes"]
        assert (
            f"role {ROLE}, application rb-bypass-cron, from {lab.CONTROLLER}: 1 session(s); budget cron: 1"
            in notes
        )
        assert any(n.startswith("role toolkit_monitor, application rb-bypass-other,") for n in notes), notes
        assert not any("rb-bypass-pooled" in n for n in notes), notes

        app_role = lab.run(BYPASS, "--role", "app", audit=audit)
        assert app_role.code == 0, app_role.stderr
        assert pooled_pid not in [a["parameters"]["pid"] for a in app_role.doc["plan"]["actions"]]

        dry = lab.run(BYPASS, "--role", ROLE, audit=audit)
        assert dry.code == 0, dry.stderr
        assert [a["parameters"]["pid"] for a in dry.doc["plan"]["actions"]] == [victim_pid]
        assert list(dry.doc["plan"]["actions"][0]["guard"]) == ["backend_start"]
        assert lab.state_of(victim_pid) == "idle"
        assert lab.audit_records(audit) == []

        done = lab.run(BYPASS, "--role", ROLE, audit=audit, yes=True)
        assert done.code == 0, done.stdout + done.stderr
        assert done.doc["verified"] is True, done.doc["verification"]
        assert lab.state_of(victim_pid) is None
        assert lab.state_of(other_pid) == "idle"
        assert other.execute("SELECT 1").fetchone() == (1,)
        assert pooled.execute("SELECT pg_backend_pid()").fetchone() == (pooled_pid,)
        (record,) = lab.outcomes(audit)
        assert (record["runbook"], record["action"]) == (BYPASS, "pg_terminate_backend")
        assert record["parameters"]["pid"] == victim_pid
        assert record["parameters"]["user"] == ROLE
        lab.no_secret(listing.stdout, dry.stdout, done.stdout, audit.read_text())
    finally:
        for conn in (victim, other, pooled):
            with suppress(psycopg.Error):
                conn.close()

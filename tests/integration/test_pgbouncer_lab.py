"""Each PgBouncer host of the tier holds its planned values on every process, listens on its own address,
and the app logs in through it with SCRAM."""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.conftest import (
    DB_HOST,
    PGBOUNCER_HOSTS,
    address,
    ansible_playbook,
    app_connection,
    lab_secret,
    ssh_ok,
)
from toolkit.adapters.errors import AUTH_HINT, TargetError
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget, ConfigEntry, DatabaseRow
from toolkit.domain.plan import PGBOUNCER_SIZED_SETTINGS

pytestmark = pytest.mark.integration
PORT = 6432


def _admin(host: str) -> AdminConsole:
    return AdminConsole(
        AdminTarget(address(host), PORT, "pgbouncer_admin", lab_secret("pgbouncer_admin_password"))
    )


def _processes(host: str) -> int:
    """How many pgbouncer processes run on the host (counted there, not taken from the inventory)."""
    return int(ssh_ok(host, "pgrep -c -x pgbouncer").strip())


def each_process(host: str) -> dict[str, tuple[dict[str, ConfigEntry], tuple[DatabaseRow, ...]]]:
    """SHOW CONFIG and SHOW DATABASES of every process on the host, keyed by the process's logfile.

    With so_reuseport the kernel hands each new connection to one process: connect until every
    process the host runs has answered (each writes its own logfile)."""
    wanted = _processes(host)
    seen: dict[str, tuple[dict[str, ConfigEntry], tuple[DatabaseRow, ...]]] = {}
    for _ in range(60):
        with _admin(host) as console:
            live = dict(console.config())
            seen.setdefault(live["logfile"].value, (live, console.databases()))
        if len(seen) == wanted:
            break
    assert len(seen) == wanted, f"{host}: {len(seen)} of {wanted} processes answered in 60 connections"
    return seen


@pytest.mark.parametrize("host", PGBOUNCER_HOSTS)
def test_every_process_holds_the_planned_values(lab_plan: dict[str, Any], host: str) -> None:
    planned = lab_plan["pgbouncer"][host]
    processes = each_process(host)
    assert len(processes) == planned["processes"], sorted(processes)
    for logfile, (live, databases) in processes.items():
        where = f"{host} {logfile}"
        for name in PGBOUNCER_SIZED_SETTINGS:
            assert int(live[name].value) == planned["settings"][name], (where, name)
        assert live["pool_mode"].value == planned["pool_mode"], where
        assert live["listen_addr"].value == address(host), where
        assert live["auth_type"].value == "scram-sha-256", where
        app = next(row for row in databases if row.name == "app")
        assert app.pool_size == planned["settings"]["default_pool_size"], where
        assert app.reserve_pool_size == planned["settings"]["reserve_pool_size"], where
        assert app.host == address(DB_HOST), where
        assert (app.paused, app.disabled) == (False, False), where


def test_pgb2_processes_share_the_port_as_numbered_peers() -> None:
    processes = each_process("pgb2")
    assert sorted(live["peer_id"].value for live, _ in processes.values()) == ["1", "2"]
    assert {live["so_reuseport"].value for live, _ in processes.values()} == {"1"}


@pytest.mark.parametrize("host", PGBOUNCER_HOSTS)
def test_pgbouncer_listens_on_its_host_address_only(host: str) -> None:
    listening = ssh_ok(host, f"ss -Hltn 'sport = :{PORT}'").split("\n")
    local = {line.split()[3] for line in listening if line.strip()}
    assert local == {f"{address(host)}:{PORT}"}, (host, local)


@pytest.mark.parametrize("host", PGBOUNCER_HOSTS)
def test_stats_user_reads_but_cannot_administer(host: str) -> None:
    target = AdminTarget(address(host), PORT, "pgbouncer_stats", lab_secret("pgbouncer_stats_password"))
    with AdminConsole(target) as console:
        assert any(p.database == "app" for p in console.pools())
        with pytest.raises(TargetError, match=r"admin access needed|not allowed|permission"):
            console.command("RELOAD")


@pytest.mark.parametrize("host", PGBOUNCER_HOSTS)
def test_app_logs_in_through_each_pgbouncer_with_scram(host: str) -> None:
    # The client's SCRAM login to PgBouncer and PgBouncer's own login to PostgreSQL both succeed.
    for _ in range(4):  # on pgb2 the connections spread over both processes
        with app_connection(pgbouncer=host) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("app",)
            assert conn.execute("SHOW password_encryption").fetchone() == ("scram-sha-256",)
            # PostgreSQL sees the client as the PgBouncer host, not as this machine.
            row = conn.execute("SELECT host(inet_client_addr())").fetchone()
            assert row == (address(host),)


@pytest.mark.parametrize("host", PGBOUNCER_HOSTS)
def test_wrong_password_is_reported_as_authentication(host: str) -> None:
    with pytest.raises(TargetError) as err:
        AdminConsole(AdminTarget(address(host), PORT, "pgbouncer_admin", "wrong-password"))
    assert str(err.value).startswith(f"pgbouncer@{address(host)}:{PORT}"), str(err.value)
    assert str(err.value).endswith(f": authentication failed during connecting; {AUTH_HINT}")
    assert "wrong-password" not in str(err.value)


def test_verify_catches_a_live_value_that_is_not_the_plan(lab_plan: dict[str, Any]) -> None:
    """A live SET the config file does not hold fails the role's verify (check mode: nothing reloads)."""
    planned = lab_plan["pgbouncer"]["pgb1"]["settings"]["default_pool_size"]
    wrong = planned + 7
    with _admin("pgb1") as console:  # pgb1 runs one process: the SET reaches the one verify reads
        console.set("default_pool_size", wrong)
    try:
        proc = ansible_playbook("playbooks/pgbouncer.yml", "--check", "--limit", "pgb1")
    finally:
        with _admin("pgb1") as console:
            console.reload()
    assert proc.returncode != 0, proc.stdout[-2000:]
    assert f"default_pool_size is planned {planned} but live {wrong}" in proc.stdout, proc.stdout[-2000:]
    with _admin("pgb1") as console:
        assert console.config()["default_pool_size"].value == str(planned)

"""The lab playbook is idempotent on every host, and an infeasible plan fails before any file changes.

A second deploy (make lab-deploy ran the first) must report changed=0 on each host and leave every
service's process alone: the postmaster on db1 and each PgBouncer process keep their pid and their
start time, and PgBouncer's files on pgb1 and pgb2 keep inode, mtime and content. This is the one
place the whole second deploy runs (tests/fleet relies on it)."""

from __future__ import annotations

import re

import pytest

from tests.integration.conftest import (
    DB_HOST,
    LAB_HOSTS,
    PGBOUNCER_HOSTS,
    address,
    ansible_playbook,
    fleet_files,
    ssh,
    ssh_ok,
    unit_state,
)

pytestmark = pytest.mark.integration

PG_UNIT = "postgresql@17-main"
PID_FILE = "/var/lib/postgresql/17/main/postmaster.pid"
PGBOUNCER_FILES = ["/etc/pgbouncer/*", "/etc/systemd/system/pgbouncer*.service"]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)


def _units() -> dict[str, list[str]]:
    """The units whose processes a no-op deploy must leave running: read from each host."""
    units = {DB_HOST: [PG_UNIT]}
    for host in PGBOUNCER_HOSTS:
        listed = ssh_ok(host, "systemctl list-units --plain --no-legend 'pgbouncer*.service'")
        units[host] = sorted(line.split()[0] for line in listed.splitlines() if line.strip())
    return units


def _states(units: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    return {f"{host}:{unit}": unit_state(host, unit) for host, names in units.items() for unit in names}


def _postmaster_pid() -> str:
    return ssh_ok(DB_HOST, f"sudo -n head -1 {PID_FILE}").strip()


def test_second_lab_run_changes_nothing_and_restarts_nothing() -> None:
    units = _units()
    assert len(units["pgb2"]) == 2, units  # both processes of pgb2 are watched
    states, pid = _states(units), _postmaster_pid()
    files = fleet_files(PGBOUNCER_FILES, PGBOUNCER_HOSTS)
    assert {f"{host}:/etc/pgbouncer/pgbouncer.ini" for host in PGBOUNCER_HOSTS} <= set(files), (
        "run 'make lab'"
    )
    proc = ansible_playbook("playbooks/lab.yml", timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:]
    recaps = {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in RECAP.finditer(proc.stdout)}
    assert set(recaps) == set(LAB_HOSTS), proc.stdout[-2000:]
    changed = [ln for ln in proc.stdout.splitlines() if ln.startswith("changed:")]
    assert {h: r for h, r in recaps.items() if r != (0, 0, 0)} == {}, changed
    assert _states(units) == states
    assert _postmaster_pid() == pid == states[f"{DB_HOST}:{PG_UNIT}"][0]
    assert fleet_files(PGBOUNCER_FILES, PGBOUNCER_HOSTS) == files


def test_infeasible_pool_fails_before_any_file_changes() -> None:
    before = fleet_files(PGBOUNCER_FILES, PGBOUNCER_HOSTS)
    assert before, "the lab's PgBouncer files are missing: run 'make lab'"
    proc = ansible_playbook("playbooks/site.yml", "-e", "pgbouncer_default_pool_size=100")
    assert proc.returncode != 0
    for host in PGBOUNCER_HOSTS:
        assert f"pgbouncer host {host}: pgbouncer_default_pool_size 100 exceeds the budget (91 usable" in (
            proc.stdout
        ), proc.stdout[-2000:]
    assert not re.search(r"^changed:", proc.stdout, re.MULTILINE)
    assert fleet_files(PGBOUNCER_FILES, PGBOUNCER_HOSTS) == before


def _dead_pid() -> str:
    """A pid on db1 whose process has ended (a child of a shell that waited for it)."""
    return ssh_ok(DB_HOST, "sh -c 'true & p=$!; wait; echo $p'").strip()


def test_lab_run_starts_a_cluster_left_with_a_stale_pid_file() -> None:
    """A host restored from a snapshot keeps postmaster.pid of a server that no longer runs."""
    lines = ssh_ok(DB_HOST, f"sudo -n cat {PID_FILE}").splitlines()
    assert lines, "the lab cluster is not running: run 'make lab'"
    ssh_ok(DB_HOST, f"sudo -n systemctl stop {PG_UNIT}")
    try:
        assert ssh(DB_HOST, f"sudo -n test -e {PID_FILE}").returncode != 0
        stale = "\n".join([_dead_pid(), *lines[1:]]) + "\n"
        ssh_ok(
            DB_HOST,
            f"sudo -n install -o postgres -g postgres -m 0600 /dev/stdin {PID_FILE}",
            stdin=stale,
        )
        # The database host only: nothing else has to do with the cluster's start.
        proc = ansible_playbook("playbooks/lab.yml", "--limit", DB_HOST)
        assert proc.returncode == 0, proc.stdout[-3000:]
        started = re.search(
            r"TASK \[(?:pgbouncer_django\.toolkit\.)?postgresql_lab : Start the cluster"
            r"[^\n]*\(systemd\)[^\n]*\n(\w+):",
            proc.stdout,
        )
        assert started and started.group(1) == "changed", proc.stdout[-3000:]
    finally:
        ssh(DB_HOST, f"sudo -n systemctl start {PG_UNIT}")
    assert (
        ssh_ok(DB_HOST, f"pg_isready -h {address(DB_HOST)} -p 5432").strip().endswith("accepting connections")
    )
    assert _postmaster_pid() == unit_state(DB_HOST, PG_UNIT)[0]

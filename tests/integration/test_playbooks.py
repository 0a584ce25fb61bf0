"""The lab playbook is idempotent on every host, and an infeasible plan fails before any file changes.

A second deploy (make lab-deploy ran the first) must report changed=0 on each host and leave every
service's process alone: the postmaster on db1 and each PgBouncer process keep their pid and their
start time, and PgBouncer's files on pgb1 and pgb2 keep inode, mtime and content. That second deploy is
the session's one whole no-op converge (tests/integration/converge.py, fixture `noop_converge`), which
test_secrets_in_argv.py watches too; tests/fleet relies on it."""

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
from tests.integration.converge import (
    PG_UNIT,
    PGBOUNCER_FILES,
    PID_FILE,
    Converge,
    postmaster_pid,
    recaps,
)

pytestmark = pytest.mark.integration


def test_second_lab_run_changes_nothing_and_restarts_nothing(noop_converge: Converge) -> None:
    before, after = noop_converge.before, noop_converge.after
    assert len(before.units["pgb2"]) == 2, before.units  # both processes of pgb2 are watched
    assert {f"{host}:/etc/pgbouncer/pgbouncer.ini" for host in PGBOUNCER_HOSTS} <= set(before.files), (
        "run 'make lab'"
    )
    out = noop_converge.output
    assert noop_converge.returncode == 0, out[-3000:]
    found = recaps(out)
    assert set(found) == set(LAB_HOSTS), out[-2000:]
    changed = [ln[:300] for ln in out.splitlines() if ln.startswith("changed:")]
    assert {h: r for h, r in found.items() if r != (0, 0, 0)} == {}, changed
    assert after.states == before.states
    assert after.postmaster == before.postmaster == before.states[f"{DB_HOST}:{PG_UNIT}"][0]
    assert after.files == before.files


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
    assert postmaster_pid() == unit_state(DB_HOST, PG_UNIT)[0]

"""The lab playbook is idempotent, and an infeasible plan fails before any file changes."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from pathlib import Path

from tests.integration.conftest import ansible_playbook

PID_FILE = Path("/var/lib/postgresql/15/main/postmaster.pid")
WATCHED = [Path("/etc/pgbouncer/pgbouncer.ini"), Path("/etc/pgbouncer/userlist.txt")]


def _fingerprint() -> dict[str, tuple[int, str]]:
    return {
        str(p): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in WATCHED
        if p.exists()
    }


def test_second_lab_run_changes_nothing() -> None:
    proc = ansible_playbook("playbooks/lab.yml")
    assert proc.returncode == 0, proc.stdout[-3000:]
    recaps = dict(re.findall(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.MULTILINE))
    # The stack host and both demo app nodes.
    assert {"lab", "app-1", "app-2"} <= set(recaps), proc.stdout[-2000:]
    changed = [ln for ln in proc.stdout.splitlines() if ln.startswith("changed:")]
    assert set(recaps.values()) == {"0"}, (recaps, changed)


def test_infeasible_pool_fails_before_any_file_changes() -> None:
    before = _fingerprint()
    assert before, "the lab's PgBouncer files are missing: run 'make lab'"
    proc = ansible_playbook("playbooks/site.yml", "-e", "pgbouncer_default_pool_size=100")
    assert proc.returncode != 0
    assert "pgbouncer_default_pool_size 100 exceeds the budget (91 usable slots" in proc.stdout
    assert not re.search(r"^changed:", proc.stdout, re.MULTILINE)
    assert _fingerprint() == before


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_lab_run_starts_a_cluster_left_with_a_stale_pid_file() -> None:
    """A host restored from a snapshot keeps postmaster.pid of a server that no longer runs."""
    assert PID_FILE.exists(), "the lab cluster is not running: run 'make lab'"
    lines = PID_FILE.read_text().splitlines()
    subprocess.run(["pg_ctlcluster", "15", "main", "stop", "-m", "fast"], check=True)
    assert not PID_FILE.exists()
    PID_FILE.write_text("\n".join([str(_dead_pid()), *lines[1:]]) + "\n")
    shutil.chown(PID_FILE, "postgres", "postgres")
    os.chmod(PID_FILE, 0o600)
    try:
        # The stack host only: the demo app nodes have nothing to do with the cluster's start.
        proc = ansible_playbook("playbooks/lab.yml", "--limit", "lab")
        assert proc.returncode == 0, proc.stdout[-3000:]
        started = re.search(
            r"TASK \[postgresql_lab : Start the cluster with pg_ctlcluster[^\n]*\n(\w+):", proc.stdout
        )
        assert started and started.group(1) == "changed", proc.stdout[-3000:]
    finally:
        subprocess.run(["pg_ctlcluster", "15", "main", "start"], check=False, capture_output=True)
    ready = subprocess.run(["pg_isready", "-q", "-p", "5432"], check=False)
    assert ready.returncode == 0

"""The lab playbook is idempotent, and an infeasible plan fails before any file changes."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from tests.integration.conftest import ansible_playbook

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
    recap = re.search(r"^lab\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.MULTILINE)
    assert recap, proc.stdout[-2000:]
    changed = [ln for ln in proc.stdout.splitlines() if ln.startswith("changed:")]
    assert recap.group(1) == "0", changed


def test_infeasible_pool_fails_before_any_file_changes() -> None:
    before = _fingerprint()
    assert before, "the lab's PgBouncer files are missing: run 'make lab'"
    proc = ansible_playbook("playbooks/site.yml", "-e", "pgbouncer_default_pool_size=100")
    assert proc.returncode != 0
    assert "pgbouncer_default_pool_size 100 exceeds the budget (91 usable slots" in proc.stdout
    assert not re.search(r"^changed:", proc.stdout, re.MULTILINE)
    assert _fingerprint() == before

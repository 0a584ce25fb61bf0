"""roles/doctor_monitor copies the inventory directory only when its tree fingerprint differs from the
host's copy (issue 13 §8: a file-by-file copy cost 13 to 17 s of every no-op converge): a file changed
on the host is put back by the next run, and a run with nothing to change skips the copy.

Run under the lab lock: `flock /tmp/toolkit-lab.lock pytest -m integration
tests/integration/test_doctor_monitor_inventory.py`.
"""

from __future__ import annotations

import hashlib
import re

import pytest

from tests.integration.conftest import LAB_INVENTORY, ansible_playbook, group, ssh_ok

pytestmark = pytest.mark.integration

TASK = "Copy the inventory doctor reads"
ON_HOST = "/etc/toolkit-monitor/inventory/hosts.yml"


def _monitor_run() -> str:
    """One run of playbooks/monitor.yml; the status line of the inventory copy (changed, ok, skipping)."""
    proc = ansible_playbook("playbooks/monitor.yml")
    if proc.returncode != 0:
        pytest.fail(f"monitor.yml exited {proc.returncode} (run make lab): {proc.stdout[-1500:]}")
    found = re.search(rf"TASK \[[^\]]*{TASK}\][^\n]*\n+(\w+):", proc.stdout)
    assert found, f"no '{TASK}' task in the run:\n{proc.stdout[-1500:]}"
    return found.group(1)


def _sha_on_host(host: str) -> str:
    return ssh_ok(host, f"sudo -n sha256sum {ON_HOST}").split()[0]


def test_a_changed_file_is_copied_back_and_an_unchanged_tree_is_skipped() -> None:
    host = group("doctor_monitor")[0]
    wanted = hashlib.sha256((LAB_INVENTORY / "hosts.yml").read_bytes()).hexdigest()
    ssh_ok(host, f"echo '# drift' | sudo -n tee -a {ON_HOST} >/dev/null")
    assert _sha_on_host(host) != wanted
    assert _monitor_run() == "changed"
    assert _sha_on_host(host) == wanted
    assert _monitor_run() == "skipping"

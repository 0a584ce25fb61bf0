"""Every fleet host: SSH as the non-root user, passwordless sudo, systemd running, its Debian release and
package versions, its name, and a network that reaches the other hosts and nothing outside the lab."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.conftest import Ssh
from tests.integration.conftest import LAB_HOSTS

pytestmark = pytest.mark.fleet

CODENAME = {"bookworm": "12", "trixie": "13"}
# Debian's packages per release (FACTS.md, "Hosts on one machine"): the version prefixes the roles rely on.
VERSIONS = {
    "bookworm": {"pgbouncer": "1.18.", "redis-server": "5:7.0.", "postgresql": "15+"},
    "trixie": {"pgbouncer": "1.24.", "redis-server": "5:8.0.", "postgresql": "17+"},
}


def test_each_host_answers_as_the_ops_user_with_sudo_and_systemd_running(fleet: Any, ssh: Ssh) -> None:
    for host in fleet.hosts:
        proc = ssh(host.name, "id -un; hostname; sudo -n true && echo sudo-ok; systemctl is-system-running")
        assert proc.returncode == 0, (host.name, proc.stderr)
        assert proc.stdout.split() == ["ops", host.name, "sudo-ok", "running"], host.name


def test_each_host_runs_its_release_with_the_expected_packages(fleet: Any, ssh: Ssh) -> None:
    for host in fleet.hosts:
        names = " ".join(VERSIONS[host.release])
        proc = ssh(
            host.name,
            ". /etc/os-release; echo $VERSION_CODENAME $VERSION_ID; "
            f"dpkg-query -W -f '${{Package}} ${{Version}}\\n' {names}",
        )
        assert proc.returncode == 0, (host.name, proc.stderr)
        first, *rows = proc.stdout.splitlines()
        assert first.split() == [host.release, CODENAME[host.release]], host.name
        versions = dict(row.split() for row in rows)
        for package, prefix in VERSIONS[host.release].items():
            assert versions[package].startswith(prefix), (host.name, package, versions[package])


def test_services_wait_for_the_roles_and_the_demo_venv_is_ready(fleet: Any, ssh: Ssh) -> None:
    imports = "import django, gunicorn, uvicorn, uvloop, httptools, psycopg, redis; print(django.__version__)"
    for host in fleet.hosts:
        proc = ssh(
            host.name,
            "systemctl is-enabled pgbouncer redis-server postgresql; systemctl is-active ssh; "
            f"/opt/toolkit-demo/venv/bin/python -c '{imports}'; "
            "/opt/toolkit-demo/venv/bin/python -c 'import psycopg; print(psycopg.pq.__impl__)'",
        )
        lines = proc.stdout.split()
        # A service is enabled only where the inventory deploys it (the roles enable what they deploy);
        # the image ships every one disabled, so nothing starts on a host before the roles ran.
        groups = LAB_HOSTS.get(host.name, {}).get("groups", [])
        # PostgreSQL's umbrella unit stays disabled everywhere: the role enables postgresql@VERSION-main.
        expected = ["enabled" if g in groups else "disabled" for g in ("pgbouncer", "redis")] + ["disabled"]
        assert lines[:4] == [*expected, "active"], (host.name, proc.stdout)
        assert lines[4].startswith("5.2."), (host.name, proc.stderr)
        assert lines[5] == "binary", host.name


def test_hosts_have_their_own_identity(fleet: Any, ssh: Ssh) -> None:
    ids = {}
    for host in fleet.hosts:
        proc = ssh(host.name, "cat /etc/machine-id; ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub")
        ids[host.name] = tuple(proc.stdout.split()[:3])
        assert proc.returncode == 0, (host.name, proc.stderr)
    assert len({i[0] for i in ids.values()}) == len(ids), "machine ids repeat"
    assert len({i[2] for i in ids.values()}) == len(ids), "SSH host keys repeat"


def test_each_host_reaches_every_other_by_name_and_address(fleet: Any, ssh: Ssh) -> None:
    probes = " ".join(f"{h.name}={h.address}" for h in fleet.hosts)
    script = (
        f"for p in {probes}; do n=${{p%%=*}}; a=${{p#*=}}; "
        '[ "$(getent hosts $n | cut -d" " -f1)" = "$a" ] || echo "name $n"; '
        'timeout 3 bash -c "echo > /dev/tcp/$a/22" 2>/dev/null || echo "tcp $a"; done; echo done'
    )
    for host in fleet.hosts:
        proc = ssh(host.name, script, timeout=60)
        assert proc.stdout.split() == ["done"], (host.name, proc.stdout, proc.stderr)


def test_no_host_has_a_route_out_of_the_lab(fleet: Any, ssh: Ssh) -> None:
    script = (
        "ip -4 route show default | wc -l; "
        "ip route get 192.0.2.1 >/dev/null 2>&1 && echo routed || echo unreachable; "
        "ip route get 198.18.1.1 >/dev/null 2>&1 && echo routed || echo unreachable; "
        "ip -o -4 addr show scope global | awk '{print $2, $4}'; "
        "timeout 3 bash -c 'echo > /dev/tcp/192.0.2.1/80' 2>/dev/null && echo open || echo closed"
    )
    for host in fleet.hosts:
        proc = ssh(host.name, script)
        lines = proc.stdout.splitlines()
        assert lines == ["0", "unreachable", "unreachable", f"eth0 {host.address}/24", "closed"], (
            host.name,
            proc.stdout,
        )


def test_the_controller_forwards_nothing_to_or_from_the_lab_bridge(fleet: Any) -> None:
    table = subprocess.run(
        ["nft", "list", "table", "inet", "toolkit_lab"], capture_output=True, text=True, check=True
    ).stdout
    bridge = fleet.network.bridge
    assert f'iifname "{bridge}" oifname "{bridge}" accept' in table
    assert f'iifname "{bridge}" drop' in table and f'oifname "{bridge}" drop' in table


def test_each_host_has_a_cgroup_tree_of_its_own(fleet: Any) -> None:
    """Started from one cgroup, every nspawn put its host in the same /payload: units of one host shared
    cgroups with the same units of the others."""
    state = Path(os.environ.get("TOOLKIT_LAB_STATE", "/var/lib/toolkit-lab"))
    for host in fleet.hosts:
        nspawn = int((state / "hosts" / host.name / "nspawn.pid").read_text())
        init = int(Path(f"/proc/{nspawn}/task/{nspawn}/children").read_text().split()[0])
        unified = next(
            line for line in Path(f"/proc/{init}/cgroup").read_text().splitlines() if line[:3] == "0::"
        )
        assert unified == f"0::/toolkit-lab/{host.name}/payload/init.scope", host.name

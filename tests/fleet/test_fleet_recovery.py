"""`up` is idempotent and recovers what a killed run left; `down` removes every namespace, veth, bridge and
mount, and `up` after it works again. Each test leaves the fleet up."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.conftest import Ssh, fleet_cmd, lab_module

pytestmark = pytest.mark.fleet

STATE = Path(os.environ.get("TOOLKIT_LAB_STATE", "/var/lib/toolkit-lab"))


def _nspawn_pid(name: str) -> int:
    return int((STATE / "hosts" / name / "nspawn.pid").read_text())


def _mounts() -> str:
    return Path("/proc/self/mountinfo").read_text()


def test_a_second_up_leaves_every_host_alone(fleet: Any) -> None:
    pids = {h.name: _nspawn_pid(h.name) for h in fleet.hosts}
    proc = fleet_cmd("up")
    assert proc.returncode == 0, proc.stderr
    for host in fleet.hosts:
        assert f"fleet: {host.name} already up" in proc.stdout
    assert f"{len(fleet.hosts)} hosts running (0 booted)" in proc.stdout
    assert {h.name: _nspawn_pid(h.name) for h in fleet.hosts} == pids


def test_up_recovers_a_host_whose_nspawn_was_killed(fleet: Any, ssh: Ssh) -> None:
    host = fleet.hosts[-1]
    os.kill(_nspawn_pid(host.name), signal.SIGKILL)
    time.sleep(0.5)
    status = fleet_cmd("status", timeout=120)
    assert status.returncode == 2
    assert f"{host.name} " in status.stdout and "stale" in status.stdout
    proc = fleet_cmd("up")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"fleet: {host.name}: cleaning what a killed run left:" in proc.stdout
    assert f"{host.name} booting at {host.address}" in proc.stdout
    assert ssh(host.name, "systemctl is-system-running").stdout.strip() == "running"


def test_up_removes_a_half_built_image_and_its_lock(fleet: Any) -> None:
    images = STATE / "images"
    half = images / ".build-trixie-000000000000-1"
    (half / "etc").mkdir(parents=True)
    (half / "etc" / "os-release").write_text("half\n")
    lock = images / ".#.build-trixie-000000000000-1.lck"
    lock.write_text("")
    proc = fleet_cmd("up")
    assert proc.returncode == 0, proc.stderr
    assert f"removing half-built image {half}" in proc.stdout
    assert not half.exists() and not lock.exists()


def test_down_removes_everything_it_made_and_up_works_again(fleet: Any, ssh: Ssh) -> None:
    host_mod = lab_module("fleet_host")
    down = fleet_cmd("down")
    assert down.returncode == 0, down.stdout + down.stderr
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = os.listdir("/sys/class/net")
    for host in fleet.hosts:
        assert host.netns not in netns
        assert host.veth not in links
        assert str(STATE / "hosts" / host.name / "root") not in _mounts()
        assert not (STATE / "hosts" / host.name / "nspawn.pid").exists()
    assert fleet.network.bridge not in links
    nft = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert host_mod.NFT_TABLE not in nft
    assert fleet_cmd("status", timeout=60).returncode == 1
    up = fleet_cmd("up")
    assert up.returncode == 0, up.stdout + up.stderr
    for host in fleet.hosts:
        assert f"{host.name} booting at {host.address}" in up.stdout
        assert "disk kept" in up.stdout
        assert ssh(host.name, "systemctl is-system-running").stdout.strip() == "running"


def _scratch_ssh(name: str, command: str) -> subprocess.CompletedProcess[str]:
    config = Path(__file__).resolve().parents[2] / ".lab" / "fleet" / "scratch_ssh_config"
    return subprocess.run(
        ["ssh", "-F", str(config), name, command], capture_output=True, text=True, timeout=30, check=False
    )


def test_a_scratch_host_recovers_from_a_killed_run_and_down_removes_all_of_it(fleet: Any, ssh: Ssh) -> None:
    """Molecule's scratch hosts: booted beside the lab without touching it, recovered after their nspawn is
    killed (disk kept), remade empty with --fresh, and taken apart entirely by down --scratch."""
    lab_pids = {h.name: _nspawn_pid(h.name) for h in fleet.hosts}
    name, marker = "tks12", "/var/tmp/toolkit-scratch-marker"
    hd = STATE / "hosts" / name
    try:
        up = fleet_cmd("up", "--scratch", f"{name}:bookworm", "--fresh")
        assert up.returncode == 0, up.stdout + up.stderr
        assert f"fleet: scratch {name} booting at 198.18.0.20 (bookworm, new disk" in up.stdout
        booted = _scratch_ssh(name, f"sudo -n touch {marker} && systemctl is-system-running")
        assert booted.stdout.strip() == "running", booted.stderr
        os.kill(_nspawn_pid(name), signal.SIGKILL)
        time.sleep(0.5)
        again = fleet_cmd("up", "--scratch", f"{name}:bookworm")
        assert again.returncode == 0, again.stdout + again.stderr
        assert f"fleet: scratch {name}: cleaning what was left:" in again.stdout
        assert "disk kept" in again.stdout
        kept = _scratch_ssh(name, f"test -e {marker} && systemctl is-system-running")
        assert kept.stdout.strip() == "running", kept.stderr
        fresh = fleet_cmd("up", "--scratch", f"{name}:bookworm", "--fresh")
        assert fresh.returncode == 0, fresh.stdout + fresh.stderr
        assert "new disk" in fresh.stdout
        assert _scratch_ssh(name, f"test -e {marker}; echo $?").stdout.strip() == "1"
    finally:
        down = fleet_cmd("down", "--scratch", name)
    assert down.returncode == 0, down.stdout + down.stderr
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert f"toolkit-{name}" not in netns
    assert f"tkv-{name}" not in os.listdir("/sys/class/net")
    assert str(hd / "root") not in _mounts()
    assert not hd.exists()
    assert {h.name: _nspawn_pid(h.name) for h in fleet.hosts} == lab_pids
    assert ssh(fleet.hosts[0].name, "systemctl is-system-running").stdout.strip() == "running"

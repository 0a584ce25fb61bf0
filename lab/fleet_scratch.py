"""Scratch hosts: short-lived hosts for Molecule, on the lab's bridge but apart from the lab's hosts.

    python3 lab/fleet.py up --scratch mol12:bookworm,mol13:trixie --fresh
    python3 lab/fleet.py down --scratch mol12,mol13

A scratch host is made and booted like a lab host (an overlay disk on its release's cached image, a
network namespace, a veth on the bridge, systemd-nspawn, the checkout's SSH key for ops with sudo), with
an address from [scratch] first_host of lab/fleet.toml on. `--fresh` gives it a new empty disk even if
it had one. `down --scratch` powers it off and removes its namespace, veth, mount and disk. Its record
(hosts/<name>/scratch.json) is written before anything else, so what a killed run left is found and
taken apart by the next up or down, of the scratch host or of the lab. SSH: .lab/fleet/scratch_ssh_config
and scratch_known_hosts; .lab/fleet/scratch_hosts.json lists every live scratch host's address.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import fleet_host as fh
import fleet_image as fi
from fleet_preflight import preflight
from fleet_spec import Fleet, FleetError, Host, classify, parse_scratch, scratch_conflicts
from fleet_ssh import SshSetup, wait_running
from fleet_sys import link_exists, run

RECORD = "scratch.json"
Lock = Callable[[Path], AbstractContextManager[None]]


def recorded(state: Path) -> tuple[Host, ...]:
    """Every scratch host this machine has a record of, up or not (a killed run's too)."""
    hosts = []
    for path in sorted((state / "hosts").glob(f"*/{RECORD}")):
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(path.read_text())
            address = ipaddress.IPv4Address(data["address"])
            hosts.append(Host(path.parent.name, str(data["release"]), address, "scratch"))
    return tuple(hosts)


def ssh_setup(checkout: Path, fleet: Fleet, hosts: tuple[Host, ...]) -> SshSetup:
    return SshSetup(checkout / ".lab" / "fleet", Fleet(fleet.network, hosts), prefix="scratch_")


def write_access(checkout: Path, fleet: Fleet, state: Path) -> SshSetup:
    """ssh_config, known_hosts and scratch_hosts.json for the scratch hosts that have a record now."""
    hosts = recorded(state)
    ssh = ssh_setup(checkout, fleet, hosts)
    ssh.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ssh.write_config({h.name: fh.host_keys(fh.host_dir(state, h) / "root") for h in hosts})
    listing = ssh.directory / "scratch_hosts.json"
    listing.write_text(
        json.dumps({h.name: {"address": str(h.address), "release": h.release} for h in hosts}, indent=1)
    )
    listing.chmod(0o600)
    return ssh


def wipe_disk(state: Path, host: Host) -> None:
    hd = fh.host_dir(state, host)
    run(["rm", "-rf", "--one-file-system", str(hd / "upper"), str(hd / "work")])
    (hd / "image").unlink(missing_ok=True)


def up(fleet: Fleet, spec: str, fresh: bool, state: Path, checkout: Path, locked: Lock) -> int:
    started = time.monotonic()
    hosts = parse_scratch(spec, fleet)
    preflight(Fleet(fleet.network, hosts), state, checkout)
    with locked(state):
        live = {h.name: str(h.address) for h in recorded(state)}
        conflicts = scratch_conflicts(hosts, live)
        if conflicts:
            raise FleetError(f"fleet: {'; '.join(conflicts)}: take it down first (down --scratch NAME)")
        fi.clear_half_built(state, sys.stdout)
        images = {r: fi.build(r, checkout, state, sys.stdout) for r in sorted({h.release for h in hosts})}
        lab_ssh = SshSetup.for_checkout(checkout, fleet)
        lab_ssh.ensure_key()
        if not link_exists(fleet.network.bridge):  # the lab is down: the bridge, as the lab's up makes it
            fh.ensure_bridge(fleet)
        everyone = Fleet(fleet.network, (*fleet.hosts, *hosts))
        for host in hosts:
            hd = fh.host_dir(state, host)
            status, actions = classify(fh.observe(state, host))
            same = live.get(host.name) == str(host.address) and (hd / "image").exists()
            if status == "up" and not fresh and same:
                fh.authorize(hd / "root", lab_ssh.public_key(), fi.OPS_USER)
                print(f"fleet: scratch {host.name} already up at {host.address}", flush=True)
                continue
            if status == "up":
                fh.power_off(state, [host], 30)
                actions = classify(fh.observe(state, host))[1]
            if actions:
                print(f"fleet: scratch {host.name}: cleaning what was left: {', '.join(actions)}", flush=True)
                fh.clean(state, host, actions)
            hd.mkdir(parents=True, exist_ok=True)
            (hd / RECORD).write_text(json.dumps({"release": host.release, "address": str(host.address)}))
            if fresh:
                wipe_disk(state, host)
            note = fh.make_disk(state, host, images[host.release])
            fh.inject(hd / "root", host, everyone, lab_ssh.public_key(), fi.OPS_USER)
            fh.make_network(fleet, host)
            pid = fh.spawn(state, host)
            print(f"fleet: scratch {host.name} booting at {host.address} ({host.release}, {note}, pid {pid})")
        ssh = write_access(checkout, fleet, state)
        wait_running(ssh, hosts, lambda h: fh.nspawn_pid(state, h), state, 180)
    print(f"fleet: up --scratch: {len(hosts)} scratch hosts running in {time.monotonic() - started:.0f} s")
    return 0


def take_apart(state: Path, hosts: list[Host]) -> list[str]:
    """Power scratch hosts off and remove everything of them; returns the names that had to be killed."""
    killed = fh.power_off(state, hosts, 30)
    for host in hosts:
        fh.teardown(state, host)
        fi.remove_tree(fh.host_dir(state, host))
    return killed


def down(fleet: Fleet, spec: str, state: Path, checkout: Path, locked: Lock) -> int:
    started = time.monotonic()
    wanted = parse_scratch(spec, fleet, need_release=False)
    preflight(Fleet(fleet.network, wanted), state, checkout, for_down=True)
    with locked(state):
        known = {h.name: h for h in recorded(state)}
        hosts = [known.get(h.name, h) for h in wanted]
        killed = take_apart(state, hosts)
        write_access(checkout, fleet, state)
        lab_up = any(classify(fh.observe(state, h))[0] != "down" for h in fleet.hosts)
        if not lab_up and not recorded(state):  # the bridge was made for the scratch hosts alone
            fh.remove_bridge(fleet)
    for name in killed:
        print(f"fleet: scratch {name} did not power off within 30 s and was killed", flush=True)
    print(
        f"fleet: down --scratch: {', '.join(h.name for h in hosts)} powered off; namespaces, veths, "
        f"mounts and disks removed in {time.monotonic() - started:.0f} s"
    )
    return 1 if killed else 0

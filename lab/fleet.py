#!/usr/bin/env python3
"""The lab fleet: Debian hosts under systemd (systemd-nspawn) in network namespaces, reached over SSH.

    python3 lab/fleet.py up                 build missing images, boot every host, wait until each runs
    python3 lab/fleet.py down [--purge]     power every host off, remove namespaces, veths, bridge, mounts
    python3 lab/fleet.py up --scratch mol12:bookworm,mol13:trixie [--fresh]
    python3 lab/fleet.py down --scratch mol12,mol13
                                            scratch hosts for Molecule, apart from the lab's (fleet_scratch)
    python3 lab/fleet.py status             one line per host
    python3 lab/fleet.py ssh NAME -- CMD    run CMD on a host as the lab's SSH user

Hosts are listed in lab/fleet.toml. Images and hosts live machine-wide under /var/lib/toolkit-lab
(TOOLKIT_LAB_STATE overrides), so another clone of the repo finds them; the SSH key, ssh_config and
known_hosts are per checkout under .lab/fleet/. up and down run as root. Lab-only code: the toolkit
package never imports it. Exit codes: 0 OK, 1 WARNING, 2 CRITICAL (refusal or failure), 64 usage,
65 bad fleet.toml.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sys
import time
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fleet_cpus as fc
import fleet_host as fh
import fleet_image as fi
import fleet_scratch as fs
from fleet_preflight import preflight
from fleet_spec import Fleet, FleetError, Host, classify, parse_fleet
from fleet_ssh import SshSetup, wait_running
from fleet_sys import dir_bytes

CHECKOUT = Path(__file__).resolve().parent.parent
SPEC = CHECKOUT / "lab" / "fleet.toml"
BOOT_TIMEOUT = float(os.environ.get("TOOLKIT_LAB_BOOT_TIMEOUT", "180"))


def state_dir() -> Path:
    return Path(os.environ.get("TOOLKIT_LAB_STATE", "/var/lib/toolkit-lab"))


def load_fleet(path: Path = SPEC) -> Fleet:
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FleetError(f"fleet: cannot read {path}: {exc}", 65) from exc
    return parse_fleet(data, str(path))


@contextlib.contextmanager
def locked(state: Path) -> Iterator[None]:
    """One up or down at a time on this machine, whichever checkout runs it; a killed run's lock is gone."""
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "fleet.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"fleet: waiting for another up/down on this machine ({state / 'fleet.lock'})", flush=True)
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def release_cpusets(command: str) -> None:
    """The lab runs on every CPU unless a benchmark pins it (lab/fleet_cpus.py): a run killed while
    pinned leaves cpusets behind, which up and down remove, moving any host still in one back."""
    try:
        held = fc.release()
    except fc.CpusError as exc:
        raise FleetError(str(exc)) from exc
    if held:
        print(
            f"fleet: {command}: {', '.join(held)} were pinned (lab/fleet_cpus.py); now on every CPU",
            flush=True,
        )


def up(fleet: Fleet, state: Path) -> int:
    started = time.monotonic()
    preflight(fleet, state, CHECKOUT)
    with locked(state):
        fi.clear_half_built(state, sys.stdout)
        release_cpusets("up")
        images = {r: fi.build(r, CHECKOUT, state, sys.stdout) for r in fleet.releases}
        ssh = SshSetup.for_checkout(CHECKOUT, fleet)
        ssh.ensure_key()
        fh.ensure_bridge(fleet)
        booted: list[Host] = []
        for host in fleet.hosts:
            hd = fh.host_dir(state, host)
            status, actions = classify(fh.observe(state, host))
            if status == "up":
                fh.authorize(hd / "root", ssh.public_key(), fi.OPS_USER)
                recorded = (hd / "image").read_text().strip()
                note = "" if recorded == images[host.release].name else f" (disk from old image {recorded})"
                print(f"fleet: {host.name} already up{note}", flush=True)
                continue
            if status == "stale":
                print(
                    f"fleet: {host.name}: cleaning what a killed run left: {', '.join(actions)}", flush=True
                )
                fh.clean(state, host, actions)
            note = fh.make_disk(state, host, images[host.release])
            fh.inject(hd / "root", host, fleet, ssh.public_key(), fi.OPS_USER)
            fh.make_network(fleet, host)
            pid = fh.spawn(state, host)
            print(
                f"fleet: {host.name} booting at {host.address} ({host.release}, {note}, pid {pid})",
                flush=True,
            )
            booted.append(host)
        ssh.write_config({h.name: fh.host_keys(fh.host_dir(state, h) / "root") for h in fleet.hosts})
        in_use = [(fh.host_dir(state, h) / "image").read_text().strip() for h in fleet.hosts]
        in_use += [p.read_text().strip() for p in (state / "hosts").glob("*/image")]  # scratch hosts' too
        fi.prune(state, [p.name for p in images.values()], in_use, sys.stdout)
        wait_running(ssh, fleet.hosts, lambda h: fh.nspawn_pid(state, h), state, BOOT_TIMEOUT)
    print(
        f"fleet: up: {len(fleet.hosts)} hosts running ({len(booted)} booted) "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 0


def down(fleet: Fleet, state: Path, purge: bool) -> int:
    started = time.monotonic()
    preflight(fleet, state, CHECKOUT, for_down=True)
    with locked(state):
        scratch = list(fs.recorded(state))  # on the bridge that goes: they go first, disks and all
        killed = fs.take_apart(state, scratch)
        if scratch:
            fs.write_access(CHECKOUT, fleet, state)
            print(f"fleet: scratch hosts taken apart: {', '.join(h.name for h in scratch)}", flush=True)
        killed += fh.power_off(state, list(fleet.hosts), 60)
        for host in fleet.hosts:
            fh.teardown(state, host)
            if purge:
                fi.remove_tree(fh.host_dir(state, host))
        fh.remove_bridge(fleet)
        release_cpusets("down")
    for name in killed:
        print(f"fleet: {name} did not power off within 60 s and was killed", flush=True)
    what = "hosts powered off, disks removed" if purge else "hosts powered off (disks kept)"
    print(
        f"fleet: down: {what}, namespaces, veths, bridge and mounts removed "
        f"in {time.monotonic() - started:.0f} s"
    )
    return 1 if killed else 0


def status(fleet: Fleet, state: Path) -> int:
    ssh = SshSetup.for_checkout(CHECKOUT, fleet)
    observed = {h.name: classify(fh.observe(state, h)) for h in fleet.hosts}

    def systemd(host: Host) -> str:
        if observed[host.name][0] != "up" or not ssh.config.exists():
            return "-"
        proc = ssh.run(host.name, "systemctl is-system-running", timeout=10)
        return proc.stdout.strip() or f"ssh exit {proc.returncode}"

    with ThreadPoolExecutor(max_workers=len(fleet.hosts)) as pool:
        answers = dict(zip([h.name for h in fleet.hosts], pool.map(systemd, fleet.hosts), strict=True))
    print(f"{'host':8} {'release':9} {'address':13} {'state':6} {'systemd':10} purpose")
    for host in fleet.hosts:
        state_name, actions = observed[host.name]
        extra = f" (left over: {', '.join(actions)})" if actions else ""
        print(f"{host.name:8} {host.release:9} {host.address!s:13} {state_name:6} {answers[host.name]:10} "
              f"{host.purpose}{extra}")  # fmt: skip
    images = sorted(p.name for p in fi.images_dir(state).glob("*-*") if p.is_dir()) if state.exists() else []
    print(f"images: {', '.join(images) or 'none'}; state {state} uses {dir_bytes(state) / 1e9:.2f} GB")
    states = {s for s, _ in observed.values()}
    if states == {"up"} and set(answers.values()) == {"running"}:
        return 0
    return 1 if states == {"down"} else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet", description=__doc__.splitlines()[0] if __doc__ else "")
    sub = parser.add_subparsers(dest="command", required=True)
    up_p = sub.add_parser("up", help="build missing images and boot every host")
    up_p.add_argument("--scratch", metavar="NAME:RELEASE,...", help="boot these scratch hosts, not the lab")
    up_p.add_argument("--fresh", action="store_true", help="with --scratch: a new empty disk for each")
    down_p = sub.add_parser("down", help="power every host off and remove what up made")
    down_p.add_argument("--purge", action="store_true", help="also remove the hosts' disks")
    down_p.add_argument("--scratch", metavar="NAME,...", help="take these scratch hosts apart, not the lab")
    sub.add_parser("status", help="one line per host")
    ssh_p = sub.add_parser("ssh", help="run a command on a host: ssh NAME -- CMD")
    ssh_p.add_argument("name")
    ssh_p.add_argument("cmd", nargs=argparse.REMAINDER)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 64 if exc.code else 0
    try:
        fleet = load_fleet()
        state = state_dir()
        if args.command == "up" and args.scratch is not None:
            return fs.up(fleet, args.scratch, args.fresh, state, CHECKOUT, locked)
        if args.command == "up":
            if args.fresh:
                raise FleetError("fleet: --fresh is for scratch hosts only (up --scratch ... --fresh)", 64)
            return up(fleet, state)
        if args.command == "down" and args.scratch is not None:
            return fs.down(fleet, args.scratch, state, CHECKOUT, locked)
        if args.command == "down":
            return down(fleet, state, args.purge)
        if args.command == "status":
            return status(fleet, state)
        host = fleet.host(args.name)
        cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
        return SshSetup.for_checkout(CHECKOUT, fleet).exec(host.name, cmd)
    except FleetError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("fleet: interrupted; run 'make lab-up' again: it cleans what was left", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

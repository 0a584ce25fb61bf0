"""The faults the fault runner injects into the lab fleet, and how each one is taken back.

Each fault acts on one host from this machine (root): through the host's network namespace
(``ip netns exec toolkit-NAME ...``), through systemd inside the host (``ssh NAME sudo -n systemctl ...``),
or on the host's systemd-nspawn process (lab/fleet_host.py). ``remove`` is safe to call whether or
not ``apply`` ran or finished: the runner calls it in a ``finally``, so an interrupted run leaves links
up, no nft table behind, services started and hosts booted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lab.fleet_spec import Fleet, Host, parse_fleet

ROOT = Path(__file__).resolve().parent.parent
SSH_CONFIG = ROOT / ".lab" / "fleet" / "ssh_config"
STATE = Path(os.environ.get("TOOLKIT_LAB_STATE", "/var/lib/toolkit-lab"))
# The table the partition fault adds inside the host's namespace; the fleet's own table is toolkit_lab.
NFT_TABLE = "toolkit_fault"
PGBOUNCER_UNITS = {"pgb1": ["pgbouncer"], "pgb2": ["pgbouncer", "pgbouncer-2"]}


class FaultError(Exception):
    """A step of a fault failed; the message names the step and the host."""


def load_fleet() -> Fleet:
    path = ROOT / "lab" / "fleet.toml"
    return parse_fleet(tomllib.loads(path.read_text()), str(path))


def run(
    args: list[str], what: str, timeout: float = 60, check: bool = True
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(  # noqa: S603 (argument lists built here)
        args, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise FaultError(f"faults: {what} failed (exit {proc.returncode}): {proc.stderr.strip()[-300:]}")
    return proc


def ssh(host: str, command: str, what: str, timeout: float = 60, check: bool = True) -> str:
    args = ["ssh", "-F", str(SSH_CONFIG), host, command]
    return run(args, f"{what} on {host}", timeout=timeout, check=check).stdout


def netns(host: Host, args: list[str], what: str, check: bool = True) -> str:
    return run(["ip", "netns", "exec", host.netns, *args], f"{what} in {host.netns}", check=check).stdout


def units(host: Host) -> str:
    return " ".join(PGBOUNCER_UNITS.get(host.name, ["pgbouncer"]))


@dataclass(frozen=True)
class Fault:
    name: str
    host: Host
    what: str  # one line for the table and the docs
    apply: Callable[[], None]
    remove: Callable[[], None]


def link_down(host: Host) -> Fault:
    def apply() -> None:
        netns(host, ["ip", "link", "set", "eth0", "down"], "taking eth0 down")

    def remove() -> None:
        netns(host, ["ip", "link", "set", "eth0", "up"], "bringing eth0 up")

    return Fault("link-down", host, f"eth0 down inside {host.netns}", apply, remove)


def frozen(host: Host) -> Fault:
    def apply() -> None:
        ssh(host.name, f"sudo -n systemctl kill -s STOP {units(host)}", "SIGSTOP to PgBouncer")

    def remove() -> None:
        ssh(host.name, f"sudo -n systemctl kill -s CONT {units(host)}", "SIGCONT to PgBouncer")

    return Fault("pgbouncer-frozen", host, f"SIGSTOP to {units(host)}", apply, remove)


def partition(host: Host) -> Fault:
    """Every packet into the host is dropped (loopback excepted): connections time out, nothing refuses."""

    def apply() -> None:
        netns(host, ["nft", "add", "table", "inet", NFT_TABLE], "adding the nft table")
        chain = "{ type filter hook input priority -10 ; policy drop ; }"
        netns(host, ["nft", "add", "chain", "inet", NFT_TABLE, "in", chain], "adding the drop chain")
        netns(host, ["nft", "add", "rule", "inet", NFT_TABLE, "in", "iif", "lo", "accept"], "admitting lo")

    def remove() -> None:
        tables = netns(host, ["nft", "list", "tables"], "listing nft tables", check=False)
        if f"inet {NFT_TABLE}" in tables:
            netns(host, ["nft", "delete", "table", "inet", NFT_TABLE], "removing the nft table")

    return Fault("partition", host, f"nft drops every packet into {host.name}", apply, remove)


def stopped(host: Host) -> Fault:
    def apply() -> None:
        ssh(host.name, f"sudo -n systemctl stop {units(host)}", "stopping PgBouncer")

    def remove() -> None:
        ssh(host.name, f"sudo -n systemctl start {units(host)}", "starting PgBouncer")

    return Fault("pgbouncer-stopped", host, f"systemctl stop {units(host)}", apply, remove)


def nspawn_pid(host: Host) -> int | None:
    try:
        pid = int((STATE / "hosts" / host.name / "nspawn.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def powered_off(host: Host) -> Fault:
    """The power cut: SIGKILL to the container's init (systemd, the child of systemd-nspawn), so nothing
    shuts down cleanly; `lab/fleet.py up` boots it again and its enabled units must start by themselves."""

    def apply() -> None:
        pid = nspawn_pid(host)
        if pid is None:
            raise FaultError(f"faults: {host.name} has no running systemd-nspawn: run 'make lab-up'")
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        for child in children:
            os.kill(int(child), signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if Path(f"/proc/{pid}").exists():
            raise FaultError(
                f"faults: {host.name}'s systemd-nspawn (pid {pid}) still runs 30 s after its init died"
            )

    def remove() -> None:
        if nspawn_pid(host) is not None:
            return
        run(
            [sys.executable, str(ROOT / "lab" / "fleet.py"), "up"],
            f"booting {host.name} (lab/fleet.py up)",
            600,
        )

    return Fault("power-off", host, f"SIGKILL to {host.name}'s init, then lab/fleet.py up", apply, remove)


MAKERS: dict[str, Callable[[Host], Fault]] = {
    "link-down": link_down,
    "pgbouncer-frozen": frozen,
    "power-off": powered_off,
    "partition": partition,
    "pgbouncer-stopped": stopped,
}
# The default run: pgb1 is the first host of the app nodes' multi-host list, so its faults are the ones
# the requests meet; db1 is the host whose loss nothing can hide.
DEFAULT_PLAN = (
    ("link-down", "pgb1"),
    ("pgbouncer-frozen", "pgb1"),
    ("power-off", "db1"),
    ("partition", "pgb1"),
    ("pgbouncer-stopped", "pgb1"),
)


def plan(fleet: Fleet, chosen: list[str] | None = None) -> list[Fault]:
    hosts = {h.name: h for h in fleet.hosts}
    pairs = [p for p in DEFAULT_PLAN if not chosen or p[0] in chosen]
    return [MAKERS[name](hosts[host]) for name, host in pairs]

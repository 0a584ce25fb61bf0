"""SSH from this machine to the lab hosts: the checkout's key, ssh_config and known_hosts under .lab/fleet/,
and waiting until every host's systemd says it is running.

    ssh -F .lab/fleet/ssh_config db1 sudo -n true
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from fleet_spec import Fleet, FleetError, Host
from fleet_sys import run

USER = "ops"


@dataclass(frozen=True)
class SshSetup:
    directory: Path
    fleet: Fleet
    # "scratch_" for the scratch hosts (lab/fleet_scratch.py): their own ssh_config and known_hosts,
    # the same key and user as the lab's.
    prefix: str = ""

    @classmethod
    def for_checkout(cls, checkout: Path, fleet: Fleet) -> SshSetup:
        return cls(checkout / ".lab" / "fleet", fleet)

    @property
    def key(self) -> Path:
        return self.directory / "id_ed25519"

    @property
    def config(self) -> Path:
        return self.directory / f"{self.prefix}ssh_config"

    @property
    def known_hosts(self) -> Path:
        return self.directory / f"{self.prefix}known_hosts"

    def ensure_key(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not self.key.exists():
            comment = f"toolkit-lab@{self.directory.parent.parent.name}"
            run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(self.key)],
                what="ssh-keygen",
            )
        self.key.chmod(0o600)

    def public_key(self) -> str:
        return Path(f"{self.key}.pub").read_text().strip()

    def write_config(self, host_keys: dict[str, list[str]]) -> None:
        """ssh_config for every host, and known_hosts from the keys up put on each host's disk: exact,
        so a host whose disk was remade never trips a stale entry."""
        blocks = [
            f"# Written by lab/fleet.py up. Use: ssh -F .lab/fleet/{self.config.name} "
            + (self.fleet.hosts[0].name if self.fleet.hosts else "NAME"),
        ]
        for host in self.fleet.hosts:
            blocks.append(f"Host {host.name}\n  HostName {host.address}")
        blocks.append(
            "Host *\n"
            f"  User {USER}\n"
            f"  IdentityFile {self.key}\n"
            "  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  StrictHostKeyChecking accept-new\n"
            "  BatchMode yes\n"
            "  ConnectTimeout 5\n"
            "  LogLevel ERROR"
        )
        self.config.write_text("\n".join(blocks) + "\n")
        lines = []
        for host in self.fleet.hosts:
            lines += [f"{host.name},{host.address} {key}" for key in host_keys.get(host.name, [])]
        self.known_hosts.write_text("\n".join(lines) + "\n")
        for path in (self.config, self.known_hosts):
            path.chmod(0o600)

    def argv(self, name: str, command: Iterable[str]) -> list[str]:
        return ["ssh", "-F", str(self.config), name, *command]

    def run(self, name: str, command: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(  # noqa: S603
                self.argv(name, [command]), capture_output=True, text=True, timeout=timeout, check=False
            )
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess([], 255, "", f"ssh to {name}: no answer after {timeout:.0f} s")

    def exec(self, name: str, command: list[str]) -> int:
        if not self.config.exists():
            raise FleetError(f"fleet: {self.config} does not exist; run 'make lab-up' first")
        argv = self.argv(name, command)
        os.execvp(argv[0], argv)  # noqa: S606
        return 2  # not reached


def wait_running(
    ssh: SshSetup, hosts: Iterable[Host], pid_of: Callable[[Host], int | None], state: Path, timeout: float
) -> None:
    """Wait until every host's `systemctl is-system-running` says running; one-line error otherwise."""
    pending = list(hosts)
    deadline = time.monotonic() + timeout
    last: dict[str, str] = {}

    def probe(host: Host) -> tuple[Host, str]:
        proc = ssh.run(host.name, "systemctl is-system-running", timeout=8)
        return host, (proc.stdout.strip() or (proc.stderr.strip().splitlines() or ["no answer"])[-1])

    with ThreadPoolExecutor(max_workers=max(1, len(pending))) as pool:
        while pending:
            log = f"{state}/hosts/%s/nspawn.log"
            for host in pending:
                if pid_of(host) is None:
                    raise FleetError(
                        f"fleet: {host.name}: systemd-nspawn exited during boot; see {log % host.name}"
                    )
            for host, answer in pool.map(probe, pending):
                last[host.name] = answer
                if answer == "running":
                    pending.remove(host)
                elif answer == "degraded":
                    failed = ssh.run(host.name, "systemctl --failed --no-legend --plain").stdout.split()
                    units = ", ".join(u for u in failed if "." in u) or "none listed"
                    raise FleetError(
                        f"fleet: {host.name} booted degraded (failed units: {units}); see {log % host.name}"
                    )
            if pending and time.monotonic() > deadline:
                host = pending[0]
                raise FleetError(
                    f"fleet: {host.name} not running after {timeout:.0f} s "
                    f"(last answer: {last.get(host.name)}); "
                    f"see {log % host.name}"
                )
            if pending:
                time.sleep(1)

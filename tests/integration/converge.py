"""The one whole no-op converge of the lab that make test runs (after `make lab` deployed it), watched.

`playbooks/lab.yml` runs once more with -vvv, every host at once, while samplers read every process's
command line on the controller and on each lab host. Two tests read the one run (the session fixture
`noop_converge` in conftest.py): test_playbooks.py, that it changed nothing and restarted nothing, and
test_secrets_in_argv.py, that no secret showed in any argv or in the -vvv output. Before, each ran its
own whole deploy (105 s and most of 191 s).
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.integration.conftest import (
    DB_HOST,
    LAB_HOSTS,
    PGBOUNCER_HOSTS,
    SSH_CONFIG,
    ansible_playbook,
    fleet_files,
    ssh_ok,
    unit_state,
)

PG_UNIT = "postgresql@17-main"
PID_FILE = "/var/lib/postgresql/17/main/postmaster.pid"
PGBOUNCER_FILES = ["/etc/pgbouncer/*", "/etc/systemd/system/pgbouncer*.service"]
RECAP = re.compile(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.MULTILINE)
# What the sampler on a host runs (python3 is on every host: Ansible uses it): distinct command lines
# until its stdin closes, then one JSON line. Its own argv carries no secret.
REMOTE_SAMPLER = """
import json, os, subprocess, sys, threading
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
seen, n = set(), 0
while not stop.is_set():
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            if raw:
                seen.add(raw.replace(b"\\0", b" ").decode("utf-8", "replace"))
    if n % 10 == 0:
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False)
        seen.update(ps.stdout.splitlines())
    n += 1
    stop.wait(0.05)
print(json.dumps({"samples": n, "seen": sorted(seen)}))
"""


class ArgvSampler:
    """Every distinct command line seen on the controller while running, from /proc and from ps."""

    def __init__(self, interval: float = 0.02, ps_every: int = 5) -> None:
        self.seen: set[str] = set()
        self.samples = 0
        self._interval = interval
        self._ps_every = ps_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _proc(self) -> None:
        for path in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                raw = path.read_bytes()
            except OSError:  # the process ended between listing and reading
                continue
            if raw:
                self.seen.add(raw.replace(b"\0", b" ").decode("utf-8", "replace"))

    def _ps(self) -> None:
        done = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=False, timeout=10)
        self.seen.update(done.stdout.splitlines())

    def _run(self) -> None:
        while not self._stop.is_set():
            self._proc()
            if self.samples % self._ps_every == 0:
                self._ps()
            self.samples += 1
            self._stop.wait(self._interval)

    @contextmanager
    def running(self) -> Iterator[ArgvSampler]:
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=30)


class HostSampler:
    """The command lines seen on one lab host, by a sampler run there over SSH as root."""

    def __init__(self, host: str) -> None:
        self.host = host
        self.seen: set[str] = set()
        self.samples = 0

    @contextmanager
    def running(self) -> Iterator[HostSampler]:
        proc = subprocess.Popen(
            ["ssh", "-F", str(SSH_CONFIG), self.host, f"sudo -n python3 -c {shlex.quote(REMOTE_SAMPLER)}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            yield self
        finally:
            out, err = proc.communicate(input="", timeout=60)
        assert proc.returncode == 0, (
            f"{self.host}: the sampler exited {proc.returncode}: {err.strip()[-300:]}"
        )
        report: dict[str, Any] = json.loads(out)
        self.samples, self.seen = report["samples"], set(report["seen"])


@contextmanager
def sampling(hosts: list[str]) -> Iterator[tuple[ArgvSampler, list[HostSampler]]]:
    """The controller's sampler and one on each named host, all running inside the block."""
    sampler, on_hosts = ArgvSampler(), [HostSampler(host) for host in hosts]
    with ExitStack() as stack:
        stack.enter_context(sampler.running())
        for host in on_hosts:
            stack.enter_context(host.running())
        yield sampler, on_hosts


def recaps(output: str) -> dict[str, tuple[int, int, int]]:
    """host -> (changed, unreachable, failed) from a play recap."""
    return {m[1]: (int(m[2]), int(m[3]), int(m[4])) for m in RECAP.finditer(output)}


def _units() -> dict[str, list[str]]:
    """The units whose processes a no-op deploy must leave running: read from each host."""
    units = {DB_HOST: [PG_UNIT]}
    for host in PGBOUNCER_HOSTS:
        listed = ssh_ok(host, "systemctl list-units --plain --no-legend 'pgbouncer*.service'")
        units[host] = sorted(line.split()[0] for line in listed.splitlines() if line.strip())
    return units


def _states(units: dict[str, list[str]]) -> dict[str, tuple[str, str]]:
    return {f"{host}:{unit}": unit_state(host, unit) for host, names in units.items() for unit in names}


def postmaster_pid() -> str:
    return ssh_ok(DB_HOST, f"sudo -n head -1 {PID_FILE}").strip()


@dataclass
class LabState:
    """What a no-op deploy must leave alone: unit pids and start times, the postmaster, PgBouncer's files."""

    units: dict[str, list[str]]
    states: dict[str, tuple[str, str]]
    postmaster: str
    files: dict[str, str]

    @classmethod
    def read(cls, units: dict[str, list[str]] | None = None) -> LabState:
        units = units or _units()
        return cls(units, _states(units), postmaster_pid(), fleet_files(PGBOUNCER_FILES, PGBOUNCER_HOSTS))


@dataclass
class Converge:
    """The watched no-op converge: its -vvv output and exit code, the lab before and after, the samples."""

    returncode: int
    output: str
    before: LabState
    after: LabState
    controller: ArgvSampler
    hosts: list[HostSampler] = field(default_factory=list)


def noop_converge() -> Converge:
    """Run the whole lab playbook once more with -vvv, sampled on the controller and on every host."""
    before = LabState.read()
    with sampling(list(LAB_HOSTS)) as (controller, hosts):
        proc = ansible_playbook("-vvv", "playbooks/lab.yml", timeout=900)
    after = LabState.read(before.units)
    return Converge(proc.returncode, proc.stdout + proc.stderr, before, after, controller, hosts)

"""No secret of the lab ever shows in a process's argv, on the controller or on any lab host, nor in
ansible-playbook -vvv output.

While a full lab deploy runs (forced to reload PgBouncer, load Redis ACLs and CONFIG SET, so every
path that authenticates runs), then `toolkit doctor`, then a deploy of the PgBouncer and Redis hosts
that puts the lab back, samplers read every process's command line: on the controller a thread
(/proc/*/cmdline every 20 ms, `ps -eo args` every 100 ms), and on each of the seven hosts a sampler
started over SSH (/proc/*/cmdline every 50 ms, `ps -eo args` every 500 ms) that reports when told to
stop. Every password file in .lab/ and the lab's SSH key are secrets: none may appear in any sample,
nor in the -vvv output or doctor's. Failures name the secret's file, never its value.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import (
    BIN,
    LAB_HOSTS,
    LAB_INVENTORY,
    PGBOUNCER_HOSTS,
    REDIS_HOSTS,
    SECRETS,
    SSH_CONFIG,
    address,
    ansible_playbook,
    lab_secret,
    ssh_ok,
)
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget

pytestmark = pytest.mark.integration

# Settings that differ from the lab's for one run, so the reload and live-apply paths run; both are
# harmless and the deploy at the end restores them. The Redis ACL file is removed so that it is
# written again and loaded with ACL LOAD.
FORCE = ("-e", "pgbouncer_stats_period=59", "-e", "redis_maxmemory_mb=255")
REDIS_ACL = "/etc/redis/redis-server.acl"
MIN_SECRET = 8  # every lab secret is 32 characters; shorter files would match by chance
SSH_KEY = SECRETS / "fleet" / "id_ed25519"
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
    """Every distinct command line seen while running, from /proc and from ps."""

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


def lab_secrets() -> dict[str, str]:
    """Every password file in .lab/ and each line of the lab's SSH key, by name (values never printed)."""
    out = {}
    for path in sorted(SECRETS.glob("*")):
        if path.is_file():
            value = path.read_text(errors="replace").strip()
            if len(value) >= MIN_SECRET:
                out[path.name] = value
    if not out or not SSH_KEY.is_file():
        pytest.fail(f"no secrets in {SECRETS}: boot and deploy the lab first with 'make lab'")
    for number, line in enumerate(SSH_KEY.read_text().splitlines(), 1):
        if len(line) >= MIN_SECRET and not line.startswith("-----"):
            out[f"{SSH_KEY.relative_to(SECRETS)} line {number}"] = line
    return out


def leaks(secrets: dict[str, str], texts: dict[str, str]) -> list[str]:
    """'<secret file> in <where>: <the line, secret masked>' for every secret found in a text."""
    found = []
    for name, value in secrets.items():
        for where, text in texts.items():
            if value in text:
                line = next(ln for ln in text.splitlines() if value in ln)
                found.append(f"{name} in {where}: {line.replace(value, '****')[:300]}")
    return found


def ran(output: str, task: str) -> bool:
    """Whether the task or handler named ``task`` changed something in this -vvv output."""
    blocks = re.split(r"\n(?=TASK \[|RUNNING HANDLER \[)", output)
    return any(f" : {task}]" in b.split("\n", 1)[0] and "changed: [" in b for b in blocks)


def _stats_periods() -> set[str]:
    """stats_period of every PgBouncer process the tier's hosts answer with (the forced value is 59)."""
    periods = set()
    for host in PGBOUNCER_HOSTS:
        target = AdminTarget(address(host), 6432, "pgbouncer_stats", lab_secret("pgbouncer_stats_password"))
        for _ in range(8):  # so_reuseport: several connections reach each process of pgb2
            with AdminConsole(target) as console:
                periods.add(console.config()["stats_period"].value)
    return periods


def test_no_secret_in_argv_or_verbose_output() -> None:
    secrets = lab_secrets()
    outputs: dict[str, str] = {}
    sampler = ArgvSampler()
    hosts = [HostSampler(host) for host in LAB_HOSTS]
    restored = False
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            stack.enter_context(sampler.running())
            for host in hosts:
                stack.enter_context(host.running())
            for redis_host in REDIS_HOSTS:
                ssh_ok(redis_host, f"sudo -n rm -f {REDIS_ACL}")
            forced = ansible_playbook("-vvv", "playbooks/lab.yml", *FORCE, timeout=900)
            outputs["the forced deploy's -vvv output"] = forced.stdout + forced.stderr
            assert forced.returncode == 0, forced.stdout[-3000:]
            doctor = subprocess.run(
                [str(BIN / "toolkit"), "doctor", "-i", str(LAB_INVENTORY), "--secrets", str(SECRETS)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            outputs["doctor's output"] = doctor.stdout + doctor.stderr
            assert doctor.returncode in (0, 1, 2), doctor.stderr
            # Only the PgBouncer and Redis hosts hold the forced values.
            restore = ansible_playbook("-vvv", "playbooks/lab.yml", "--limit", "pgbouncer:redis", timeout=900)
            outputs["the restoring deploy's -vvv output"] = restore.stdout + restore.stderr
            assert restore.returncode == 0, restore.stdout[-3000:]
            restored = True
    finally:
        if not restored:
            ansible_playbook(
                "playbooks/lab.yml", "--limit", "pgbouncer:redis", timeout=900
            )  # put the lab back
    print(f"forced deploy, doctor and restoring deploy sampled for {time.monotonic() - started:.0f} s")
    assert _stats_periods() == {"60"}, "the restoring deploy left a forced value behind"
    # Every path that authenticates ran while the samplers watched, and the samplers kept up.
    forced_out = outputs["the forced deploy's -vvv output"]
    for task in (
        "Reload PgBouncer",
        "Load the changed ACL file into the running instance",
        "Apply the changed settings live with CONFIG SET",
    ):
        assert ran(forced_out, task), f"{task!r} did not run in the forced deploy"
    assert sampler.samples > 100
    assert any("BECOME-SUCCESS" in s for s in sampler.seen), "the controller's sampler never saw a module run"
    for host in hosts:
        assert host.samples > 100, f"{host.host}: only {host.samples} samples"
        assert any("BECOME-SUCCESS" in s for s in host.seen), (
            f"{host.host}: the sampler never saw a module run"
        )
    texts = {"an argv on the controller": "\n".join(sorted(sampler.seen)), **outputs}
    texts |= {f"an argv on {host.host}": "\n".join(sorted(host.seen)) for host in hosts}
    found = leaks(secrets, texts)
    assert not found, "secrets shown:\n" + "\n".join(found)


def test_sampler_sees_a_short_lived_process() -> None:
    """The sampler is fast enough to catch a process that lives as long as a psql call does."""
    marker = f"toolkit-sampler-check-{time.monotonic_ns()}"
    sampler = ArgvSampler()
    with sampler.running():
        time.sleep(0.1)
        subprocess.run(["sh", "-c", f": {marker}; sleep 0.2"], check=True, timeout=10)
        time.sleep(0.1)
    assert any(marker in s for s in sampler.seen)


def test_a_host_sampler_sees_a_short_lived_process_there() -> None:
    """The sampler on a host catches a process that lives there as long as a psql call does."""
    marker = f"toolkit-sampler-check-{time.monotonic_ns()}"
    sampler = HostSampler("db1")
    with sampler.running():
        time.sleep(2)  # the sampler's python starts over SSH
        ssh_ok("db1", f"sh -c ': {marker}; sleep 0.2'")
        time.sleep(0.3)
    assert any(marker in s for s in sampler.seen)

"""No secret of the lab ever shows in a process's argv or in ansible-playbook -vvv output.

While a full lab deploy runs (forced to reload PgBouncer, load Redis ACLs and CONFIG SET, so every
path that authenticates runs), then `toolkit doctor`, then a normal deploy that puts the lab back, a
thread reads every process's command line (/proc/*/cmdline every 20 ms, `ps -eo args` every 100 ms).
Every file in .lab/ is a secret: none may appear in any sample, nor in the -vvv output or doctor's.
Failures name the secret's file, never its value.
"""

from __future__ import annotations

import re
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import BIN, LAB_INVENTORY, ROOT, SECRETS, ansible_playbook

pytestmark = pytest.mark.integration

# Settings that differ from the lab's for one run, so the reload and live-apply paths run; both are
# harmless and the normal deploy at the end restores them. The Redis ACL file is removed so that
# it is written again and loaded with ACL LOAD.
FORCE = ("-e", "pgbouncer_stats_period=59", "-e", "redis_maxmemory_mb=255")
REDIS_ACL = Path("/etc/redis/redis-server.acl")
MIN_SECRET = 8  # every lab secret is 32 characters; shorter files would match by chance


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


def lab_secrets() -> dict[str, str]:
    """Every secret file under .lab/ by its name (the values are never printed)."""
    out = {}
    for path in sorted(SECRETS.rglob("*")):
        if path.is_file():
            value = path.read_text(errors="replace").strip()
            if len(value) >= MIN_SECRET:
                out[str(path.relative_to(SECRETS))] = value
    if not out:
        pytest.fail(f"no secrets in {SECRETS}: deploy the lab first with 'make lab'")
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


def test_no_secret_in_argv_or_verbose_output() -> None:
    secrets = lab_secrets()
    outputs: dict[str, str] = {}
    sampler = ArgvSampler()
    restored = False
    try:
        with sampler.running():
            REDIS_ACL.unlink(missing_ok=True)
            forced = ansible_playbook("-vvv", "playbooks/lab.yml", *FORCE, timeout=1500)
            outputs["the forced deploy's -vvv output"] = forced.stdout + forced.stderr
            assert forced.returncode == 0, forced.stdout[-3000:]
            doctor = subprocess.run(
                [str(BIN / "toolkit"), "doctor", "-i", str(LAB_INVENTORY), "--secrets", str(ROOT / ".lab")],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            outputs["doctor's output"] = doctor.stdout + doctor.stderr
            assert doctor.returncode in (0, 1, 2), doctor.stderr
            restore = ansible_playbook("-vvv", "playbooks/lab.yml", timeout=1500)
            outputs["the normal deploy's -vvv output"] = restore.stdout + restore.stderr
            assert restore.returncode == 0, restore.stdout[-3000:]
            restored = True
    finally:
        if not restored:
            ansible_playbook("playbooks/lab.yml", timeout=1500)  # leave the lab as it was
    # Every path that authenticates ran while the sampler watched, and the sampler kept up.
    forced_out = outputs["the forced deploy's -vvv output"]
    for task in (
        "Reload PgBouncer",
        "Load the changed ACL file into the running instance",
        "Apply the changed settings live with CONFIG SET",
    ):
        assert ran(forced_out, task), f"{task!r} did not run in the forced deploy"
    assert sampler.samples > 100
    assert any("AnsiballZ_command" in s for s in sampler.seen), "the sampler never saw a module run"
    found = leaks(secrets, {"a process's argv": "\n".join(sorted(sampler.seen)), **outputs})
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

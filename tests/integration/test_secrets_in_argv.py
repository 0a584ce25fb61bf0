"""No secret of the lab ever shows in a process's argv, on the controller or on any lab host, nor in
ansible-playbook -vvv output.

Samplers read every process's command line: on the controller a thread (/proc/*/cmdline every 20 ms,
`ps -eo args` every 100 ms), and on each of the seven hosts a sampler started over SSH (/proc/*/cmdline
every 50 ms, `ps -eo args` every 500 ms) that reports when told to stop. They watch, in turn:
- the session's whole no-op converge of the lab with -vvv (tests/integration/converge.py, fixture
  `noop_converge`, shared with test_playbooks.py): every host's secret-handling tasks (psql with the
  roles' passwords on db1, the app nodes' settings, the monitor) run there as in any deploy;
- a -vvv deploy of the PgBouncer and Redis hosts only (the hosts with reload and live-apply paths),
  after drift was put there (INI_DRIFT, a lower live maxmemory, the ACL file removed) so that it reloads
  PgBouncer, loads Redis ACLs and runs CONFIG SET: every path that authenticates runs, and the same
  deploy puts the lab back; then `toolkit doctor`.
Every password file in .lab/ and the lab's SSH key are secrets: none may appear in any sample, nor in
the -vvv output or doctor's. Failures name the secret's file, never its value.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import time

import pytest
import redis

from tests.integration.conftest import (
    BIN,
    LAB_HOSTS,
    LAB_INVENTORY,
    PGBOUNCER_HOSTS,
    REDIS_HOSTS,
    SECRETS,
    address,
    ansible_playbook,
    lab_secret,
    ssh_ok,
)
from tests.integration.converge import ArgvSampler, Converge, HostSampler, recaps, sampling
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget

pytestmark = pytest.mark.integration

# Drift put on the PgBouncer and Redis hosts for one deploy, so that its reload and live-apply paths
# run and it puts the lab back itself: each PgBouncer process's reloadable ini says stats_period 59 (the
# deploy rewrites it, RELOAD), each Redis runs with 1 MiB less maxmemory (CONFIG SET), and the Redis ACL
# file is removed (written again, ACL LOAD).
INI_DRIFT = (
    "sed -i 's/^stats_period = 60$/stats_period = 59/' $(ls /etc/pgbouncer/pgbouncer*.ini | grep -v restart)"
)
REDIS_ACL = "/etc/redis/redis-server.acl"
MIN_SECRET = 8  # every lab secret is 32 characters; shorter files would match by chance
SSH_KEY = SECRETS / "fleet" / "id_ed25519"


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


def _redis_admin(host: str) -> redis.Redis:
    """The Redis admin user's client (the role's redis_admin_user of inventory/lab)."""
    password = lab_secret("redis_admin_password")
    return redis.Redis(host=address(host), port=6379, username="deploy", password=password, socket_timeout=5)


def _maxmemory(host: str) -> str:
    with _redis_admin(host) as admin:
        return str(admin.config_get("maxmemory")["maxmemory"])


def _stats_periods() -> set[str]:
    """stats_period of every PgBouncer process the tier's hosts answer with (the forced value is 59)."""
    periods = set()
    for host in PGBOUNCER_HOSTS:
        target = AdminTarget(address(host), 6432, "pgbouncer_stats", lab_secret("pgbouncer_stats_password"))
        for _ in range(8):  # so_reuseport: several connections reach each process of pgb2
            with AdminConsole(target) as console:
                periods.add(console.config()["stats_period"].value)
    return periods


def test_no_secret_in_argv_or_verbose_output(noop_converge: Converge) -> None:
    secrets = lab_secrets()
    outputs = {"the no-op converge's -vvv output": noop_converge.output}
    assert noop_converge.returncode == 0, noop_converge.output[-3000:]
    forced_hosts = [*PGBOUNCER_HOSTS, *REDIS_HOSTS]
    limit = ("--limit", "pgbouncer:redis")
    restored = False
    started = time.monotonic()
    maxmemory = {host: _maxmemory(host) for host in REDIS_HOSTS}
    try:
        with sampling(list(LAB_HOSTS)) as (sampler, hosts):
            for host in PGBOUNCER_HOSTS:
                ssh_ok(host, f"sudo -n sh -c {shlex.quote(INI_DRIFT)}")
            for host in REDIS_HOSTS:
                ssh_ok(host, f"sudo -n rm -f {REDIS_ACL}")
                with _redis_admin(host) as admin:
                    admin.config_set("maxmemory", int(maxmemory[host]) - 2**20)
            forced = ansible_playbook("-vvv", "playbooks/lab.yml", *limit, timeout=900)
            outputs["the forced deploy's -vvv output"] = forced.stdout + forced.stderr
            assert forced.returncode == 0, forced.stdout[-3000:]
            restored = True
            doctor = subprocess.run(
                [str(BIN / "toolkit"), "doctor", "-i", str(LAB_INVENTORY), "--secrets", str(SECRETS)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            outputs["doctor's output"] = doctor.stdout + doctor.stderr
            assert doctor.returncode in (0, 1, 2), doctor.stderr
    finally:
        if not restored:
            ansible_playbook("playbooks/lab.yml", *limit, timeout=900)  # put the lab back
    print(f"forced deploy and doctor sampled for {time.monotonic() - started:.0f} s")
    # The one deploy undid the drift: files, live settings.
    assert _stats_periods() == {"60"}
    for host in PGBOUNCER_HOSTS:
        assert not ssh_ok(
            host, "sudo -n grep -l '^stats_period = 59' /etc/pgbouncer/*.ini || true"
        ).strip(), host
    for host in REDIS_HOSTS:
        assert _maxmemory(host) == maxmemory[host], host
    # Every path that authenticates ran while the samplers watched, and the samplers kept up.
    forced_out = outputs["the forced deploy's -vvv output"]
    forced_recaps = recaps(forced_out)
    assert set(forced_recaps) == set(forced_hosts), forced_out[-2000:]
    print(f"forced deploy, changed per host: { ({h: r[0] for h, r in forced_recaps.items()}) }")
    for task in (
        "Reload PgBouncer",
        "Load the changed ACL file into the running instance",
        "Apply the changed settings live with CONFIG SET",
    ):
        assert ran(forced_out, task), f"{task!r} did not run in the forced deploy"
    watched = {"the no-op converge": (noop_converge.controller, noop_converge.hosts, list(LAB_HOSTS))}
    watched["the forced deploy"] = (sampler, hosts, forced_hosts)
    texts = {}
    for phase, (controller, on_hosts, deployed) in watched.items():
        assert controller.samples > 100, f"{phase}: only {controller.samples} samples on the controller"
        assert any("BECOME-SUCCESS" in s for s in controller.seen), (
            f"{phase}: the controller's sampler never saw a module run"
        )
        for host in on_hosts:
            assert host.samples > 100, f"{phase}: {host.host}: only {host.samples} samples"
            assert host.host not in deployed or any("BECOME-SUCCESS" in s for s in host.seen), (
                f"{phase}: {host.host}: the sampler never saw a module run"
            )
        texts[f"an argv on the controller during {phase}"] = "\n".join(sorted(controller.seen))
        texts |= {f"an argv on {h.host} during {phase}": "\n".join(sorted(h.seen)) for h in on_hosts}
    found = leaks(secrets, {**texts, **outputs})
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

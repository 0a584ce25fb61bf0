"""toolkit doctor as a monitor on the fleet (roles/doctor_monitor on the group doctor_monitor, app1): the
timer is active and fires; a run writes the Prometheus text into the textfile directory, as the monitor
user, and it parses with prometheus_client; it holds both PgBouncer hosts; while pgb1's pool is held
idle in transaction by an extra instance of the WSGI node (the pool-exhaustion drill's injection), the
waiting-clients gauge of that pool rises, labelled with the node the load comes from.

Run under the lab lock: `flock /tmp/toolkit-lab.lock pytest -m fleet tests/fleet/test_doctor_timer.py`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.drills import pool_exhaustion
from lab.drills.harness import Lab, extra_instances
from lab.drills.http_load import request
from tests.fleet.conftest import ROOT, Ssh
from toolkit.adapters import inventory
from toolkit.adapters.errors import TargetError

pytestmark = pytest.mark.fleet

INVENTORY = str(ROOT / "inventory" / "lab")
UNIT = "toolkit-doctor"  # roles/doctor_monitor's doctor_monitor_unit
TEXTFILE = "/var/lib/prometheus/node-exporter/toolkit.prom"  # its textfile dir and name
HOLD_MS = 60_000
EXTRA_PORT = 8111  # an extra instance of the WSGI node, beside the drills' ports

Samples = dict[str, list[tuple[dict[str, str], float]]]


@pytest.fixture(scope="module")
def monitor(ssh: Ssh) -> str:
    """The monitor host of inventory/lab, with the role deployed on it."""
    if not (ROOT / ".lab" / "app_password").exists():
        pytest.fail("the lab is not deployed: run make lab")
    hosts = inventory.load(INVENTORY).groups.get("doctor_monitor", [])
    assert len(hosts) == 1, f"inventory/lab: group doctor_monitor should hold one host, got {hosts}"
    found = ssh(hosts[0], f"test -x /opt/toolkit-monitor/venv/bin/toolkit && systemctl cat {UNIT}.timer")
    if found.returncode != 0:
        pytest.fail(
            f"{hosts[0]}: the doctor_monitor role is not deployed: run make lab ({found.stderr.strip()})"
        )
    return hosts[0]


def show(ssh: Ssh, host: str, unit: str, *props: str) -> dict[str, str]:
    done = ssh(host, f"systemctl show {unit} " + " ".join(f"-p {p}" for p in props))
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)


def run_once(ssh: Ssh, host: str) -> tuple[Samples, dict[str, str]]:
    """Start the service (oneshot: returns when doctor has ended), then read and parse the textfile."""
    before = ssh(host, "date +%s").stdout.strip()
    started = time.monotonic()
    done = ssh(host, f"sudo -n systemctl start {UNIT}.service", timeout=90)
    print(f"{host}: {UNIT}.service ran in {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stderr
    state = show(ssh, host, f"{UNIT}.service", "Result", "ExecMainStatus")
    stat = ssh(host, f"stat -c '%Y %U %a' {TEXTFILE}").stdout.split()
    assert int(stat[0]) >= int(before), f"{TEXTFILE} was not rewritten by the run: {stat}, run at {before}"
    state["owner"], state["mode"] = stat[1], stat[2]
    text = ssh(host, f"cat {TEXTFILE}").stdout
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples, state


def values(samples: Samples, name: str, **labels: str) -> list[float]:
    return [v for got, v in samples.get(name, []) if all(got.get(k) == w for k, w in labels.items())]


def test_the_timer_is_enabled_active_and_fires_every_minute(ssh: Ssh, monitor: str) -> None:
    timer = show(ssh, monitor, f"{UNIT}.timer", "ActiveState", "UnitFileState", "TimersCalendar")
    assert (timer["ActiveState"], timer["UnitFileState"]) == ("active", "enabled"), timer
    assert "OnCalendar=*-*-* *:*:00" in timer["TimersCalendar"], timer
    # It has fired on its own: the journal shows a run the timer started within the last two minutes.
    since = ssh(monitor, f"sudo -n journalctl -u {UNIT}.service --since -120s -o cat --no-pager").stdout
    assert "Finished" in since or "Deactivated successfully" in since, since


def test_the_service_is_hardened_and_not_failed_by_findings(ssh: Ssh, monitor: str) -> None:
    props = show(
        ssh,
        monitor,
        f"{UNIT}.service",
        "User",
        "NoNewPrivileges",
        "ProtectSystem",
        "PrivateTmp",
        "ReadWritePaths",
        "SuccessExitStatus",
        "TimeoutStartUSec",
    )
    print(props)
    assert props["User"] == "toolkit-monitor", props
    assert (props["NoNewPrivileges"], props["ProtectSystem"], props["PrivateTmp"]) == ("yes", "strict", "yes")
    assert props["ReadWritePaths"] == "/var/lib/prometheus/node-exporter", props
    assert {"1", "2", "3"} <= set(props["SuccessExitStatus"].split()), props
    secrets = ssh(
        monitor, "sudo -n sh -c 'stat -c \"%n %a %U %G\" /etc/toolkit-monitor/secrets/*'"
    ).stdout.splitlines()
    assert len(secrets) == 3, secrets
    assert all(line.split()[1:] == ["640", "root", "toolkit-monitor"] for line in secrets), secrets


def test_a_run_writes_a_textfile_that_parses_with_both_pgbouncer_hosts(ssh: Ssh, monitor: str) -> None:
    samples, state = run_once(ssh, monitor)
    # The lab's one documented finding (pgbouncer.version_outdated) makes doctor exit 2: still a success.
    assert state["Result"] == "success" and state["ExecMainStatus"] in {"0", "1", "2"}, state
    assert state["owner"] == "toolkit-monitor" and state["mode"] == "644", state
    data = inventory.load(INVENTORY)
    for host in ("pgb1", "pgb2"):
        address = str(data.hostvars[host]["pgbouncer_listen_addr"])
        up = [
            (labels, v)
            for labels, v in samples.get("toolkit_doctor_target_up", [])
            if labels.get("name") == host and labels.get("address", "").startswith(f"{address}:6432")
        ]
        assert up and all(v == 1.0 for _, v in up), (host, samples.get("toolkit_doctor_target_up"))
        # The pool gauges of issue 12 §3 (toolkit doctor --format prometheus), per host and process.
        assert values(samples, "toolkit_pgbouncer_pool_clients_waiting", host=host), host
    # No app node is read over SSH from the monitor host (--no-django-nodes): no unread target.
    assert all(v == 1.0 for _, v in samples["toolkit_doctor_target_up"]), samples["toolkit_doctor_target_up"]


def _hold(url: str) -> None:
    # A holder whose instance is stopped gets an error: that is the end of the fault.
    with contextlib.suppress(TargetError):
        request(url, timeout=HOLD_MS / 1000 + 30)


def _until(check: Callable[[], Any], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(1)


def test_waiting_clients_rise_for_the_exhausted_pool_with_the_app_node(ssh: Ssh, monitor: str) -> None:
    lab = Lab.load(INVENTORY)
    sick = lab.node("wsgi")
    servers, holders = pool_exhaustion.holders_needed(lab)["pgb1"]
    print(f"pgb1: {servers} server connections, {holders} holders from {sick.name}")
    by_port = {EXTRA_PORT: {"threads": holders, "database": {"host": lab.pgbouncers["pgb1"]}}}
    waiting: list[float] = []

    def exhausted() -> list[float]:
        samples, _ = run_once(ssh, monitor)
        labels = {"host": "pgb1", "database": "app", "user": "app", "app_node": sick.name}
        waiting[:] = values(samples, "toolkit_pgbouncer_pool_clients_waiting_by_app", **labels)
        return [v for v in waiting if v > 0]

    scaled = {"server": "wsgi_gthread", "workers": 1}
    with extra_instances(lab, [(sick, EXTRA_PORT)], overrides=scaled, by_port=by_port, wait_s=120) as urls:
        for _ in range(holders):
            url = f"{urls[0]}/idle-transaction/?ms={HOLD_MS}"
            threading.Thread(target=_hold, args=(url,), daemon=True).start()
        risen = _until(exhausted, 45)
        print(f"toolkit_pgbouncer_pool_clients_waiting_by_app{{host=pgb1, app_node={sick.name}}}: {waiting}")
    # The fault ends with the instance: its sessions close, and the pool drains.
    assert risen, f"no client of {sick.name} seen waiting on pgb1's pool app/app: {waiting}"

    def drained() -> bool:
        samples, _ = run_once(ssh, monitor)
        return all(v == 0 for v in values(samples, "toolkit_pgbouncer_pool_clients_waiting", host="pgb1"))

    assert _until(drained, 60), "pgb1's pools still have waiting clients after the fault ended"

"""Faults over the fleet's network (python -m lab.faults): for each fault doctor names the affected target,
with the exit code docs/checks.md gives for its findings, and afterwards the lab is healthy again; with
one PgBouncer host stopped both app nodes keep serving through the other, within the database's budget.

One run of the fault runner (about 2 minutes) serves every test here; its table is printed (-s), wall
times are printed, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fleet.conftest import ROOT

pytestmark = pytest.mark.fleet

FAULTS = ["link-down", "pgbouncer-frozen", "power-off", "partition", "pgbouncer-stopped"]


@pytest.fixture(scope="module")
def run(fleet: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (ROOT / ".lab" / "app_password").exists():
        pytest.fail("the lab is not deployed: run make lab")
    out = tmp_path_factory.mktemp("faults") / "faults.json"
    # close_fds=False: a caller holding the lab lock (flock ... pytest) passes it on to the runner.
    proc = subprocess.run(
        [sys.executable, "-m", "lab.faults", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        close_fds=False,
    )
    print(proc.stdout[-6000:], proc.stderr[-2000:])
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-2000:]
    data: dict[str, Any] = json.loads(Path(out).read_text())
    data["exit"] = proc.returncode
    return data


def record(run: dict[str, Any], name: str) -> dict[str, Any]:
    found = [r for r in run["faults"] if r["fault"] == name]
    assert len(found) == 1, [r["fault"] for r in run["faults"]]
    return found[0]


@pytest.mark.parametrize("name", FAULTS)
def test_doctor_reports_the_affected_target_with_its_documented_exit_code(
    run: dict[str, Any], name: str
) -> None:
    r = record(run, name)
    assert "error" not in r, r.get("error")
    doctor = r["doctor"]
    target = doctor["on_target"]["target"]
    assert target is not None, f"doctor has no target at {r['target']}: {doctor}"
    assert doctor["on_target"]["findings"] or not target["ok"], doctor
    # docs/checks.md: the worst finding decides, CRITICAL outranks UNKNOWN.
    assert doctor["exit_code"] == doctor["documented_exit"], doctor


@pytest.mark.parametrize("name", FAULTS)
def test_the_lab_is_healthy_again_after_the_fault(run: dict[str, Any], name: str) -> None:
    recovery = record(run, name)["recovery"]
    assert recovery["healthy"], recovery
    assert recovery["requests"]["ok"] == recovery["requests"]["total"] > 0, recovery


def test_a_silent_fault_is_unknown_by_timeout_and_a_stopped_service_is_refused(run: dict[str, Any]) -> None:
    causes = {r["fault"]: (r["doctor"]["on_target"]["target"] or {}).get("cause") for r in run["faults"]}
    assert "timed out" in causes["partition"], causes
    assert "timed out" in causes["pgbouncer-frozen"], causes
    assert causes["pgbouncer-stopped"] == "connection refused", causes


def test_app_nodes_fail_over_while_the_first_pgbouncer_host_is_down(run: dict[str, Any]) -> None:
    """pgb1 is first in the nodes' libpq host list: while it is refused, frozen, partitioned or off its
    link, each new connection costs at most connect_timeout (2 s) before pgb2 answers."""
    for name in ("pgbouncer-stopped", "link-down", "partition", "pgbouncer-frozen"):
        requests = record(run, name)["requests"]
        print(name, requests)
        assert requests["total"] > 0
        assert requests["ok"] / requests["total"] >= 0.95, (name, requests)


def test_one_pgbouncer_host_carries_the_load_within_the_budget(run: dict[str, Any]) -> None:
    r = record(run, "pgbouncer-stopped")
    h = r["headroom"]
    budget = h["budget"]
    print(json.dumps(h, indent=1))
    assert h["error"] is None and h["samples"] > 0, h
    assert h["processes_seen"] == list(range(1, budget["processes"][h["survivor"]] + 1)), h
    # The load went through the survivor: PostgreSQL saw the app only from its address.
    assert set(h["peak_app_backends_by_client_addr"]) == {h["host"]}, h
    assert sum(h["peak_server_connections_per_process"].values()) > 0, h
    assert h["peak_app_backends_total"] <= budget["caps"][h["survivor"]] <= budget["usable"], h
    assert budget["usable"] <= budget["max_minus_reserved"], budget


def test_the_runner_exits_0_when_every_fault_was_diagnosed_and_undone(run: dict[str, Any]) -> None:
    assert run["exit"] == 0, [
        (r["fault"], r.get("doctor", {}).get("text"), r["recovery"]) for r in run["faults"]
    ]

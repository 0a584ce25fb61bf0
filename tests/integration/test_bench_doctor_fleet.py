"""The doctor_fleet harness on a tiny fleet: it starts its PgBouncers on the lab's first PgBouncer host,
doctor reads every target from this machine, and nothing it started is left running there, also when
the block that uses the fleet fails. No timing asserts."""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.integration.conftest import PGBOUNCER_HOSTS, address

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "doctor_fleet.py"
HOST = address(PGBOUNCER_HOSTS[0])  # where the harness starts its PgBouncers (ports 6433 and up)


def harness() -> ModuleType:
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))  # its own imports: fleet, machine
    spec = importlib.util.spec_from_file_location("doctor_fleet", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def test_two_sizes_every_target_read_and_nothing_left_running(tmp_path: Path) -> None:
    out = tmp_path / "runs.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--sizes",
            "1,2",
            "--rounds",
            "1",
            "--no-warmup",
            "--workdir",
            str(tmp_path),
            "--json",
            str(out),
            "--out",
            str(tmp_path / "results"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = json.loads(out.read_text())
    runs = doc["runs"]
    assert sorted(runs) == ["1", "2"]
    for n, measured in runs.items():
        assert len(measured) == 1
        run = measured[0]
        # N PgBouncers plus the lab's PostgreSQL and Redis, every one read.
        assert (run["targets"], run["read"], run["unread"]) == (int(n) + 2, int(n) + 2, [])
        assert run["code"] in (0, 1, 2)  # findings are expected (the fleet is not the plan), UNKNOWN is not
    assert "every target read in every run: yes" in proc.stdout
    results = json.loads((tmp_path / "results" / "doctor_fleet.json").read_text())
    assert results["schema"] == {"name": "bench.doctor_fleet", "version": 1}
    assert [r["n"] for r in results["summary"]["rows"]] == [1, 2]
    assert results["summary"]["all_read"] is True
    assert results["summary"]["goal"] is None  # no N = 20 in this run
    assert sorted(results["runs"]) == ["1", "2"]
    md = (tmp_path / "results" / "doctor_fleet.md").read_text()
    assert md.startswith("# Doctor over a fleet (")
    assert "| 2 | 4 | 4 |" in md  # N = 2: four targets, four read
    assert "6434" in (tmp_path / "fleet-2.yml").read_text()  # N = 2 lists both PgBouncers
    assert "6434" not in (tmp_path / "fleet-1.yml").read_text()
    fleet_dir = Path(doc["fleet_dir"])
    assert fleet_dir.name.startswith("doctor-fleet-pgbouncer-")
    assert harness().running_units() == []
    assert not listening(HOST, 6433)
    assert not listening(HOST, 6434)
    assert listening(HOST, 6432)  # the lab's PgBouncer is untouched


def test_the_fleet_is_stopped_when_the_block_fails() -> None:
    fleet_module = harness()
    seen: dict[str, object] = {}
    with pytest.raises(RuntimeError, match="failed on purpose"), fleet_module.fleet(2) as running:
        seen["listening"] = [listening(HOST, 6433), listening(HOST, 6434)]
        seen["units"] = len(fleet_module.running_units(running.mark))
        raise RuntimeError("failed on purpose")
    assert seen["listening"] == [True, True]
    assert seen["units"] == 2
    assert fleet_module.running_units() == []
    assert not listening(HOST, 6433)
    assert not listening(HOST, 6434)

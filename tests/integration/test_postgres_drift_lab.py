"""Doctor's capacity drift check against db1, which nothing here changes: only the inventory's copy differs.

db1 runs with the lab inventory's max_connections and reserved slots (roles/postgresql_lab sets them
from it), so doctor with the lab's own inventory reports no drift. A copy of the inventory that says
otherwise must make doctor report it, from the live values it read.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import BIN, DB_HOST, LAB_INVENTORY, ROOT, SECRETS, ssh_ok

DRIFT = {"postgres.max_connections_drift", "postgres.reserved_connections_drift"}


def _inventory(tmp_path: Path, **database: Any) -> Path:
    """A copy of inventory/lab with ``database`` replacing values of group_vars/all/database.yml."""
    inventory = tmp_path / "inventory" / "lab"
    shutil.copytree(LAB_INVENTORY, inventory)
    # The lab inventory finds its secrets and SSH config at inventory_dir/../../.lab.
    (tmp_path / ".lab").symlink_to(SECRETS)
    path = inventory / "group_vars" / "all" / "database.yml"
    values = yaml.safe_load(path.read_text())
    assert set(database) <= set(values), f"not in {path}: {set(database) - set(values)}"
    path.write_text(yaml.safe_dump({**values, **database}))
    return inventory


def _doctor(inventory: Path) -> tuple[int, dict[str, Any]]:
    proc = subprocess.run(
        [
            str(BIN / "toolkit"),
            "doctor",
            "-i",
            str(inventory),
            "--only",
            "postgres",
            "--format",
            "json",
            "--secrets",
            str(SECRETS),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout.strip(), f"doctor printed nothing (exit {proc.returncode}): {proc.stderr}"
    return proc.returncode, json.loads(proc.stdout)


def _drift(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["id"]: f for f in report["findings"] if f["id"] in DRIFT}


@pytest.fixture(scope="module")
def live() -> dict[str, int]:
    """db1's settings, read as postgres on the host (the same numbers doctor must see)."""
    names = ("max_connections", "superuser_reserved_connections", "reserved_connections")
    sql = "SELECT name, setting FROM pg_settings WHERE name IN (" + ", ".join(f"'{n}'" for n in names) + ")"
    out = ssh_ok(DB_HOST, f"sudo -n -u postgres psql -XAtF '=' -c \"{sql}\"")
    settings = dict(line.split("=", 1) for line in out.split())
    return {k: int(v) for k, v in settings.items()}


def test_the_lab_inventory_matches_db1(live: dict[str, int]) -> None:
    lab = yaml.safe_load((LAB_INVENTORY / "group_vars" / "all" / "database.yml").read_text())
    assert live["max_connections"] == lab["database_max_connections"], "run make lab"
    _, report = _doctor(LAB_INVENTORY)
    assert _drift(report) == {}
    assert [t for t in report["targets"] if t["kind"] == "postgres" and not t["ok"]] == []


def test_an_inventory_above_the_live_max_connections_is_critical(
    tmp_path: Path, live: dict[str, int]
) -> None:
    inventory = _inventory(tmp_path, database_max_connections=live["max_connections"] + 20)
    code, report = _doctor(inventory)
    found = _drift(report)
    assert set(found) == {"postgres.max_connections_drift"}, report["findings"]
    finding = found["postgres.max_connections_drift"]
    assert finding["severity"] == "critical"
    assert finding["evidence"] == {
        "max_connections": live["max_connections"],
        "inventory_max_connections": live["max_connections"] + 20,
    }
    assert "the plan counts 20 slot(s) PostgreSQL does not have" in finding["summary"]
    assert code == 2


def test_an_inventory_below_the_live_max_connections_warns(tmp_path: Path, live: dict[str, int]) -> None:
    inventory = _inventory(tmp_path, database_max_connections=live["max_connections"] - 10)
    _, report = _doctor(inventory)
    finding = _drift(report)["postgres.max_connections_drift"]
    assert finding["severity"] == "warning"
    assert "the plan leaves 10 slot(s) unused" in finding["summary"]


def test_fewer_reserved_slots_in_the_inventory_than_live_is_critical(
    tmp_path: Path, live: dict[str, int]
) -> None:
    su = live["superuser_reserved_connections"]
    assert su >= 1, "db1 keeps superuser-reserved slots (roles/postgresql_lab)"
    inventory = _inventory(tmp_path, database_superuser_reserved_connections=su - 1)
    _, report = _doctor(inventory)
    found = _drift(report)
    assert set(found) == {"postgres.reserved_connections_drift"}, report["findings"]
    finding = found["postgres.reserved_connections_drift"]
    assert finding["severity"] == "critical"
    assert finding["evidence"]["superuser_reserved_connections"] == su
    assert finding["evidence"]["inventory_superuser_reserved_connections"] == su - 1
    assert finding["evidence"]["reserved_connections"] == live.get("reserved_connections", 0)

"""The plan_speed harness runs its rounds and prints the ratio of toolkit plan to ansible-inventory.

It reads inventory/lab (no host is contacted). No timing asserts: only that it ran, printed a ratio
and wrote its results with every sample.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "plan_speed.py"


def test_one_round_prints_the_ratio_and_writes_every_sample(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--rounds", "1", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^ratio \d+\.\d\d \(the slower toolkit plan / ansible-inventory", proc.stdout, re.M)
    doc = json.loads((tmp_path / "plan_speed.json").read_text())
    assert doc["schema"]["name"] == "bench.plan_speed"
    # ansible-inventory, the JSON plan, the table, and the JSON plan through the old entry (no early read)
    assert [len(s) for s in doc["samples_ms"].values()] == [1, 1, 1, 1]
    assert any(name.endswith("no early read") for name in doc["samples_ms"])
    assert doc["goal"]["limit"] == 1.2 and doc["goal"]["ratio"] > 0
    assert (tmp_path / "plan_speed.md").read_text().startswith("# toolkit plan against ansible-inventory")

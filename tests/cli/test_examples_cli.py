"""The example inventories are deployable, as docs/deploy.md's step 2 checks them: `toolkit plan` sizes
each one, and ansible-playbook accepts the site playbook with it (--syntax-check, no host contacted)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
EXAMPLES = sorted(p.name for p in (ROOT / "inventory").iterdir() if p.name.startswith("example-"))
ENV = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_FORCE_COLOR": "0"}


def test_there_are_examples() -> None:
    assert {"example-colocated", "example-tier"} <= set(EXAMPLES)


@pytest.mark.parametrize("example", [*EXAMPLES, "lab"])
def test_plan_sizes_the_example(example: str) -> None:
    proc = subprocess.run(
        [str(BIN / "toolkit"), "plan", "-i", f"inventory/{example}", "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"pgbouncer"' in proc.stdout


@pytest.mark.parametrize("example", [*EXAMPLES, "lab"])
def test_the_site_playbook_accepts_the_example(example: str) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", f"inventory/{example}", "playbooks/site.yml", "--syntax-check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=ENV,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr

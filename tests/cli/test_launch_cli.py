"""The console script's launcher (toolkit/cli/launch.py, issue 13 §8): the inventory read of ``toolkit
plan|doctor -i X`` starts before typer is imported, the command takes it over, and a read nobody takes
(a usage error, other vault flags) is killed and reaped. No timing asserts (bench/plan_speed.py measures).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.adapters import inventory
from toolkit.cli import launch
from toolkit.cli.context import load_context

ROOT = Path(__file__).resolve().parents[2]
INVENTORY = "inventory/lab"
PROBE = """
import sys
from toolkit.cli import launch
launch.prestart(["plan", "-i", "inventory/lab", "--format", "json"])
print("typer" in sys.modules, len(launch._started))
launch.release()
"""


@pytest.fixture(autouse=True)
def _lab_cwd(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    launch.release()


def test_the_read_starts_before_typer_is_imported() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.split() == ["False", "1"]


def test_load_context_takes_the_started_read_over(monkeypatch: pytest.MonkeyPatch) -> None:
    launch.prestart(["doctor", "-i", INVENTORY, "--offline"])
    (started,) = launch._started

    def second_read(*args: object, **kwargs: object) -> None:
        raise AssertionError("load_context read the inventory a second time")

    monkeypatch.setattr(inventory, "load", second_read)
    ctx = load_context(INVENTORY)
    assert launch._started == []
    assert started.proc.returncode == 0
    assert "pgb1" in ctx.data.hostvars


def test_a_read_of_other_vault_flags_is_killed_not_used() -> None:
    launch.prestart(["plan", "-i", INVENTORY])
    (started,) = launch._started
    assert launch.claim((INVENTORY,), inventory.Vault("other-password-file")) is None
    assert started.proc.returncode is not None
    assert launch._started == []


def test_a_usage_error_leaves_no_read_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[inventory.PendingRead] = []
    real = inventory.start

    def spy(*args: object, **kwargs: object) -> inventory.PendingRead:
        reads.append(real(*args, **kwargs))  # type: ignore[arg-type]
        return reads[-1]

    monkeypatch.setattr(inventory, "start", spy)
    with pytest.raises(SystemExit) as done:
        launch.main(["plan", "-i", INVENTORY, "--no-such-option"])
    assert done.value.code == 64
    assert len(reads) == 1
    assert reads[0].proc.returncode is not None
    assert launch._started == []


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_the_launcher_prints_what_the_app_prints(fmt: str) -> None:
    args = ["plan", "-i", INVENTORY, "--format", fmt]
    env = {"COLUMNS": "100", "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin"}
    outputs = [
        subprocess.run(
            [sys.executable, "-c", f"import sys; from {module} import main; main(sys.argv[1:])", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
            env=env,
        ).stdout
        for module in ("toolkit.cli.launch", "toolkit.cli.app")
    ]
    assert outputs[0] == outputs[1]
    assert "pgb1" in outputs[0]

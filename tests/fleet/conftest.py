"""Fleet tests run against the lab fleet (lab/fleet.py): they bring it up if it is not, as root."""

from __future__ import annotations

import importlib
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.converge import recaps  # noqa: F401 - the one play-recap parser, for the fleet tests
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "lab"
FLEET = [sys.executable, str(LAB / "fleet.py")]
SSH_CONFIG = ROOT / ".lab" / "fleet" / "ssh_config"


def lab_module(name: str) -> ModuleType:
    if str(LAB) not in sys.path:
        sys.path.insert(0, str(LAB))
    return importlib.import_module(name)


def fleet_cmd(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FLEET, *args], capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="session")
def fleet() -> Any:
    """The fleet as lab/fleet.toml describes it, up and running (brought up here if it is not)."""
    spec = lab_module("fleet_spec")
    parsed = spec.parse_fleet(tomllib.loads((LAB / "fleet.toml").read_text()), "fleet.toml")
    if fleet_cmd("status", timeout=120).returncode != 0:
        up = fleet_cmd("up")
        assert up.returncode == 0, up.stdout + up.stderr
    return parsed


Ssh = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def ssh(fleet: Any) -> Ssh:
    """ssh(host, command) as the lab's non-root user, with the checkout's ssh_config."""

    def run(host: str, command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["ssh", "-F", str(SSH_CONFIG), host, command],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


SECRETS = ROOT / ".lab"


def secret(name: str) -> str:
    """A lab secret that the lab playbook generated in .lab/ (never printed)."""
    path = SECRETS / name
    if not path.exists():
        pytest.fail(f"{path} is missing: deploy the fleet first with 'make lab'")
    return path.read_text().strip()


def admin(addr: str, process: int = 0) -> AdminConsole:
    """The admin console of the PgBouncer at addr (``process``: that one of several, 0: any), through
    the toolkit's own adapter (autocommit, simple query protocol: FACTS.md)."""
    target = AdminTarget(addr, 6432, "pgbouncer_admin", secret("pgbouncer_admin_password"), process=process)
    return AdminConsole(target)

"""The wheel on a second Python (issue 12 §2): on a Debian 13 host of the fleet, with Python 3.13, pipx
installs the toolkit's wheel, and `toolkit plan` and `toolkit doctor --offline` run there on a copy of
inventory/lab.

The hosts have no route out, so pipx itself and every dependency come from a wheelhouse this machine
builds for the host's Python (lab/wheelhouse.py, cached in .lab/wheelhouse): pipx is installed into a
virtualenv under /tmp as the lab's SSH user, and `pipx install --pip-args '--no-index --find-links ...'`
installs the toolkit. Everything goes under one directory in /tmp on the host, removed afterwards.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from lab import wheelhouse
from tests.fleet.conftest import ROOT, SSH_CONFIG, Ssh

pytestmark = pytest.mark.fleet

HOST = "app2"  # Debian 13 (lab/fleet.toml)
WORK = "/tmp/toolkit-pipx-test"


def upload(host: str, files: dict[str, Path], target: str) -> None:
    """Copy local directories into ``target`` on ``host`` (tar over SSH), each under its name."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in files.items():
            tar.add(path, arcname=name, filter=lambda t: None if "__pycache__" in t.name else t)
    done = subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), host, f"mkdir -p {target} && tar -x -C {target}"],
        input=buffer.getvalue(),
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()


@pytest.fixture(scope="module")
def installed(fleet: object, ssh: Ssh) -> Iterator[dict[str, str]]:
    """pipx and the toolkit installed on HOST from the wheelhouse; removed afterwards."""
    version = ssh(HOST, "python3 -c 'import platform; print(platform.python_version())'")
    assert version.returncode == 0, f"{HOST}: {version.stderr.strip()}: is the lab up? run make lab"
    python = version.stdout.strip()
    assert python.startswith("3.13."), f"{HOST} should run Debian 13's Python 3.13, got {python}"
    # pip too: pipx upgrades pip in its shared libraries (to its own minimum, pip>=26.1 with pipx 1.18).
    wheels = wheelhouse.build(python, ["pipx", "pip"])
    ssh(HOST, f"rm -rf {WORK}")
    try:
        upload(HOST, {"wheels": wheels, "inventory/lab": ROOT / "inventory" / "lab"}, WORK)
        find = f"--no-index --find-links {WORK}/wheels"
        env = f"PIPX_HOME={WORK}/pipx PIPX_BIN_DIR={WORK}/bin PIPX_MAN_DIR={WORK}/man"
        (wheel,) = [p.name for p in wheels.glob("pgbouncer_django_toolkit-*.whl")]
        steps = [
            f"python3 -m venv {WORK}/pipx-venv",
            f"{WORK}/pipx-venv/bin/pip install -q --disable-pip-version-check {find} pipx",
            f"{env} {WORK}/pipx-venv/bin/pipx install --pip-args={shlex.quote(find)} {WORK}/wheels/{wheel}",
        ]
        for step in steps:
            done = ssh(HOST, step, timeout=600)
            assert done.returncode == 0, f"{HOST}: {step}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
        pipx = ssh(HOST, f"{env} {WORK}/pipx-venv/bin/pipx --version").stdout.strip()
        venv_python = ssh(
            HOST, f"{WORK}/pipx/venvs/pgbouncer-django-toolkit/bin/python --version"
        ).stdout.strip()
        info = {"host_python": python, "pipx": pipx, "toolkit_venv_python": venv_python}
        print(f"{HOST}: {info}")
        yield info
    finally:
        ssh(HOST, f"rm -rf {WORK}")


def toolkit(ssh: Ssh, *args: str) -> subprocess.CompletedProcess[str]:
    # From the host's /tmp, not the inventory's directory: nothing of the checkout is there.
    return ssh(HOST, f"cd /tmp && {WORK}/bin/toolkit " + " ".join(shlex.quote(a) for a in args), timeout=120)


def test_pipx_installs_the_wheel_into_python_3_13(ssh: Ssh, installed: dict[str, str]) -> None:
    assert installed["toolkit_venv_python"].startswith("Python 3.13."), installed
    done = toolkit(ssh, "--version")
    print(done.stdout.strip())
    assert done.returncode == 0 and "0.1.0" in done.stdout, done.stdout + done.stderr


def test_plan_runs_on_python_3_13(ssh: Ssh, installed: dict[str, str]) -> None:
    done = toolkit(ssh, "plan", "-i", f"{WORK}/inventory/lab", "--format", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    assert set(plan["pgbouncer"]) == {"pgb1", "pgb2"}, plan["pgbouncer"].keys()
    assert set(plan["redis"]) == {"redis1", "redis2"}, plan["redis"].keys()


def test_doctor_offline_runs_on_python_3_13(ssh: Ssh, installed: dict[str, str]) -> None:
    # --no-django-nodes: the copied inventory's SSH route to the app nodes (.lab/fleet) is not on the host.
    args = ["doctor", "-i", f"{WORK}/inventory/lab", "--offline", "--no-django-nodes", "--format", "json"]
    done = toolkit(ssh, *args)
    print(done.stdout[-1500:], done.stderr[-500:])
    report = json.loads(done.stdout)
    assert (done.returncode, report["status"], report["findings"]) == (0, "ok", []), report

"""The wheel works outside the checkout: built from the source tree, installed into a fresh virtualenv
with its dependencies from the index (as pipx does), and run from a directory that is not the checkout.

Needs no lab servers, only the package index (or pip's cache); `make wheel` runs it, a stage of
`make test` (about a minute with a warm cache). It checks `toolkit --version`, the full page of
`toolkit runbook show`, and `toolkit plan` on an example inventory copied out of the checkout. The
wheel's files carry no lab code (the drills, the demo harness, runuser, /opt/toolkit-demo).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import Parser
from pathlib import Path

import pytest

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "pgbouncer-django-toolkit"
# What only the lab does, as root: none of it may be in a file of the wheel.
LAB_ONLY = (b"runuser", b"/opt/toolkit-demo", b"toolkit-demo", b"chown(", b"http_load", b"lab.drills")
# The source tree without what a build must not see: stale build/ output, the virtualenv, caches, secrets.
SKIP = (".git", ".venv", "build", "dist", "*.egg-info", ".lab", ".ansible", "*_cache", "__pycache__")


@dataclass(frozen=True)
class Installed:
    """A wheel installed into a fresh virtualenv, and a working directory outside the checkout."""

    wheel: Path
    bin: Path
    cwd: Path
    env: dict[str, str]

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "toolkit"), *args],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def _pip(python: Path | str, *args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert proc.returncode == 0, f"pip {args[0]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    base = tmp_path_factory.mktemp("wheel")
    source = base / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(*SKIP))
    _pip(sys.executable, "wheel", "--no-deps", "-q", str(source), "-w", str(base / "dist"), cwd=base)
    (wheel,) = (base / "dist").glob("*.whl")
    subprocess.run([sys.executable, "-m", "venv", str(base / "venv")], check=True, timeout=300)
    _pip(base / "venv" / "bin" / "python", "install", "-q", str(wheel), cwd=base)
    work = base / "elsewhere"
    (work / "home").mkdir(parents=True)
    shutil.copytree(ROOT / "inventory" / "example-colocated", work / "inventory")
    env = {
        "PATH": f"{base / 'venv' / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "HOME": str(work / "home"),
        "LANG": "C.UTF-8",
    }
    yield Installed(wheel, base / "venv" / "bin", work, env)


def test_the_distribution_is_not_called_toolkit(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        (meta,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(wheel.read(meta).decode())
        names = wheel.namelist()
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["License-Expression"] == "MIT"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    ansible = [r for r in metadata.get_all("Requires-Dist") or [] if r.startswith("ansible-core")]
    assert len(ansible) == 2 and all("python_version" in r for r in ansible), ansible


def test_the_wheel_carries_no_lab_code(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        assert all(n.startswith(("toolkit/", "pgbouncer_django_toolkit-")) for n in names), names
        assert not [n for n in names if "drills" in n or n.endswith(("lab.py", "http_load.py"))]
        for name in [n for n in names if n.startswith("toolkit/")]:  # METADATA holds the README
            found = [w.decode() for w in LAB_ONLY if w in wheel.read(name)]
            assert not found, f"{name} in the wheel holds lab-only {found}"


def test_the_wheel_carries_every_runbook_page(installed: Installed) -> None:
    docs = {p.name: p.read_bytes() for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    with zipfile.ZipFile(installed.wheel) as wheel:
        pages = {
            Path(n).name: wheel.read(n) for n in wheel.namelist() if n.startswith("toolkit/runbooks/pages/")
        }
    assert pages == docs


def test_version(installed: Installed) -> None:
    proc = installed.run("--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"toolkit 0.1.0 ({DISTRIBUTION})\n"


def test_runbook_show_prints_the_full_page(installed: Installed) -> None:
    proc = installed.run("runbook", "show", "terminate-idle-transactions")
    assert proc.returncode == 0, proc.stderr
    page = (ROOT / "docs" / "runbooks" / "terminate-idle-transactions.md").read_text(encoding="utf-8")
    assert proc.stdout == page
    assert len(page.splitlines()) > 10  # a page, not the three-line stub of a missing file


def test_plan_on_an_example_inventory_outside_the_checkout(installed: Installed) -> None:
    proc = installed.run("plan", "-i", "inventory", "--format", "json", "--debug")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["schema"].startswith("toolkit.plan/")


def test_the_lab_is_not_installed(installed: Installed) -> None:
    proc = installed.run("lab", "drill", "all")
    assert proc.returncode == 64 and "No such command 'lab'" in proc.stderr
    python = subprocess.run(
        [str(installed.bin / "python"), "-c", "import lab.drills"],
        cwd=installed.cwd,
        env=installed.env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert python.returncode == 1 and "No module named 'lab'" in python.stderr

"""The collection as a user gets it: the built tarball, installed with ansible-galaxy into an empty
collections path, in a fresh virtualenv that has ansible-core and nothing of this project.

Shared by tests/packaging/test_collection.py (no lab) and tests/fleet/test_collection_deploy.py (deploys
onto the fleet). Every command runs from a directory outside the checkout, with no ansible.cfg, no roles
path and no PYTHONPATH, so nothing of the checkout can be found by accident.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
FQCN = "pgbouncer_django.toolkit"
# ansible-core's own floor (meta/runtime.yml, pyproject.toml); pip picks the newest this Python supports.
ANSIBLE_CORE = "ansible-core>=2.18.1"


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 900) -> str:
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, (
        f"{' '.join(args[:3])} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}"
    )
    return proc.stdout


def build_tarball(dest: Path) -> Path:
    """``ansible-galaxy collection build`` from the checkout (make collection), into ``dest``."""
    _run(
        [str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(dest), str(ROOT)], cwd=dest
    )
    (tarball,) = dest.glob("pgbouncer_django-toolkit-*.tar.gz")
    return tarball


@dataclass(frozen=True)
class CollectionEnv:
    """A fresh virtualenv with ansible-core only, and the collection installed into ``collections``."""

    bin: Path
    collections: Path
    work: Path

    @property
    def installed(self) -> Path:
        return self.collections / "ansible_collections" / "pgbouncer_django" / "toolkit"

    def env(self, **extra: str) -> dict[str, str]:
        """A user's environment with only this venv: the collection path set, no roles path, no config."""
        return {
            "PATH": f"{self.bin}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(self.work / "home"),
            "LANG": "C.UTF-8",
            "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
            "ANSIBLE_ROLES_PATH": "",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_LOCAL_TEMP": str(self.work / "home" / ".ansible" / "tmp"),
            **extra,
        }

    def run(self, *args: str, timeout: int = 900, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / args[0]), *args[1:]],
            cwd=self.work,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def install(base: Path) -> CollectionEnv:
    """Build the tarball, make the ansible-core-only venv and install the tarball into an empty path."""
    (base / "dist").mkdir()
    tarball = build_tarball(base / "dist")
    _run([sys.executable, "-m", "venv", str(base / "venv")], cwd=base, timeout=300)
    venv = base / "venv" / "bin"
    pip = [str(venv / "python"), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    _run([*pip, ANSIBLE_CORE], cwd=base)
    work = base / "elsewhere"
    (work / "home").mkdir(parents=True)
    collections = base / "collections"
    collections.mkdir()
    env = CollectionEnv(venv, collections, work)
    _run(
        [str(venv / "ansible-galaxy"), "collection", "install", "-p", str(collections), str(tarball)],
        work,
        env.env(),
    )
    return env

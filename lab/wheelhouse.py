"""A wheelhouse for the lab's hosts, which have no route out: the toolkit's wheel and its dependencies.

The hosts get packages only from their images (lab/fleet_image.py), and an image is not rebuilt for
the toolkit. So this machine builds the toolkit's wheel from the checkout and downloads every
dependency as a binary wheel for the host's Python (``pip download --only-binary=:all:
--python-version ... --platform manylinux...``): pip decides markers and wheel tags for that Python,
not for this machine's. roles/doctor_monitor copies the directory to the host and installs with
``--no-index --find-links`` (``doctor_monitor_wheelhouse``); tests/fleet/test_pipx_python313.py
installs pipx and the toolkit from it.

    python lab/wheelhouse.py 3.11.2            # .lab/wheelhouse/cp311 (Debian 12's Python)
    python lab/wheelhouse.py 3.13 --with pipx  # .lab/wheelhouse/cp313 (Debian 13's), pipx too

Cached: ``.lab/wheelhouse/<tag>/.key`` holds a hash of the sources, the Python version, the extra
requirements and the recipe; a run whose key matches does nothing. A build goes into
``.build-<tag>-<pid>`` and is renamed into place when complete, so a half-built wheelhouse is never used.
Lab-only: it needs the package index (or pip's cache) on this machine, never on the hosts.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIR = ROOT / ".lab" / "wheelhouse"
RECIPE = "2"
# What the wheel is built from (toolkit/runbooks/pages links to docs/runbooks).
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "toolkit", "docs/runbooks")
# glibc of the lab's releases: Debian 12 has 2.36, Debian 13 2.41; manylinux_2_17 covers manylinux2014.
GLIBC_MINORS = range(17, 37)


# pip download takes the target's tags from --python-version, but evaluates a python_full_version marker
# with this machine's Python (measured: redis needs async-timeout on "python_full_version < '3.11.3'",
# Debian 12 has 3.11.2, and the download left it out). Each such requirement is added by hand.
FULL_VERSION_GAPS = (((3, 11, 3), "async-timeout>=4.0.3"),)


def gaps(python_version: str) -> list[str]:
    """Requirements a python_full_version marker adds for ``python_version``.

    >>> gaps("3.11.2"), gaps("3.13.5")
    (['async-timeout>=4.0.3'], [])
    """
    have = tuple(int(x) for x in python_version.split("."))
    return [req for below, req in FULL_VERSION_GAPS if have < below]


def tag(python_version: str) -> str:
    """``cp311`` for ``3.11.2``.

    >>> tag("3.11.2"), tag("3.13")
    ('cp311', 'cp313')
    """
    major, minor = python_version.split(".")[:2]
    return f"cp{major}{minor}"


def _files() -> list[Path]:
    out: list[Path] = []
    for name in SOURCES:
        path = ROOT / name
        if path.is_file():
            out.append(path)
        else:
            out.extend(p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)
    return out


def key(python_version: str, extra: list[str]) -> str:
    """A hash of everything that makes the wheelhouse: sources, Python version, extras, recipe."""
    digest = hashlib.sha256(f"{RECIPE}\0{python_version}\0{' '.join(sorted(extra))}\0".encode())
    for path in _files():
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603 (our own pip)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        sys.exit(f"wheelhouse: pip {args[0]} failed: {last}; can this machine reach the package index?")


def build(python_version: str, extra: list[str]) -> Path:
    """The wheelhouse for ``python_version`` (built if its key changed); its path."""
    target = DIR / tag(python_version)
    wanted = key(python_version, extra)
    stamp = target / ".key"
    if stamp.is_file() and stamp.read_text().strip() == wanted:
        return target
    DIR.mkdir(parents=True, exist_ok=True)
    for stale in DIR.glob(f".build-{tag(python_version)}-*"):
        shutil.rmtree(stale, ignore_errors=True)
    aside = DIR / f".build-{tag(python_version)}-{os.getpid()}"
    aside.mkdir()
    with tempfile.TemporaryDirectory(prefix="toolkit-wheel-") as tmp:
        # A copy of the sources: the build leaves build/ and *.egg-info behind, not in the checkout.
        source = Path(tmp) / "source"
        for name in SOURCES:
            src, dst = ROOT / name, source / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy2(src, dst)
        _pip("wheel", "--no-deps", str(source), "-w", str(aside))
    (wheel,) = aside.glob("*.whl")
    platforms = [f"manylinux_2_{m}_{platform.machine()}" for m in GLIBC_MINORS]
    platforms += [f"manylinux2014_{platform.machine()}"]
    _pip(
        "download",
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        "--abi",
        tag(python_version),
        *(arg for p in platforms for arg in ("--platform", p)),
        "-d",
        str(aside),
        str(wheel),
        *extra,
        *gaps(python_version),
    )
    (aside / ".key").write_text(wanted + "\n")
    old = DIR / f".old-{tag(python_version)}-{os.getpid()}"
    if target.exists():
        target.rename(old)
    aside.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    """Build (or find cached) one wheelhouse per Python version given; print each path."""
    parser = argparse.ArgumentParser(prog="python lab/wheelhouse.py", description=__doc__.splitlines()[0])
    parser.add_argument("python_version", nargs="+", help="the host's Python, e.g. 3.11.2 or 3.13")
    parser.add_argument("--with", dest="extra", action="append", default=[], help="another requirement")
    args = parser.parse_args(argv)
    for version in args.python_version:
        print(build(version, args.extra))
    return 0


if __name__ == "__main__":
    sys.exit(main())

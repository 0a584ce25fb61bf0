"""Build one Debian image per release for the lab fleet, cached machine-wide and named after its recipe.

An image is a directory tree made by debootstrap, then completed inside systemd-nspawn (not booted) with
Debian's packages of every role and the demo app's virtualenv. It is built aside in `.build-<name>-<pid>`
and renamed into place only when complete, with `.toolkit-image.json` written last: a directory without
that file is never used, and the next run removes it. Hosts never have a network route out; the build
runs with this machine's network: Debian's mirror, and the Python package index for the demo's wheels.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

from fleet_spec import image_name, prunable_images, recipe_hash
from fleet_sys import kill_rooted_at, run, unmount_under

MARKER = ".toolkit-image.json"
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
# Bump when the build steps change in a way the recipe below does not show.
RECIPE_VERSION = 1
OPS_USER = "ops"
VENV = "/opt/toolkit-demo/venv"  # the path roles/django_demo uses
WHEELS = "/opt/toolkit-lab/wheels"
REQUIREMENTS = "roles/django_demo/files/requirements.txt"

PACKAGES = (
    # boot, login, become
    "systemd", "systemd-sysv", "dbus", "openssh-server", "sudo", "ca-certificates",
    # what Ansible needs on a target: python, apt bindings, setfacl for become_user
    "python3", "python3-venv", "python3-apt", "acl",
    # network and process tools for the drills and the fault injection
    "iproute2", "nftables", "procps", "iputils-ping", "curl",
    # every package the roles install
    "postgresql", "postgresql-contrib", "postgresql-client", "pgbouncer", "redis-server", "wrk", "libpq5",
)  # fmt: skip
# Installed, but not started at boot: the roles enable what they deploy.
DISABLED_UNITS = ("postgresql.service", "pgbouncer.service", "redis-server.service")


def recipe(release: str, checkout: Path) -> dict[str, Any]:
    packages = sorted(PACKAGES)
    return {
        "version": RECIPE_VERSION,
        "release": release,
        "packages": packages,
        "disabled": list(DISABLED_UNITS),
        "requirements": (checkout / REQUIREMENTS).read_text(),
        "script": setup_script(release, packages),
    }


def setup_script(release: str, packages: list[str]) -> str:
    return f"""set -eu
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8
# Debian's policy: no service starts from a package's install script inside the image.
printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
cat > /etc/apt/sources.list <<EOF
deb {MIRROR} {release} main
deb {MIRROR} {release}-updates main
deb {SECURITY} {release}-security main
EOF
apt-get -q update
apt-get -q -y install --no-install-recommends {" ".join(packages)}
# The image's own pip resolves the markers and wheels for the image's Python (3.11.2 or 3.13); the
# wheels stay in the image, so a role can reinstall them with --no-index on a host without a network.
python3 -m venv {VENV}
{VENV}/bin/pip download -q --disable-pip-version-check -d {WHEELS} -r /opt/toolkit-lab/requirements.txt
{VENV}/bin/pip install -q --disable-pip-version-check --no-index --find-links {WHEELS} \\
  -r /opt/toolkit-lab/requirements.txt
useradd --create-home --shell /bin/bash {OPS_USER}
echo '{OPS_USER} ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/{OPS_USER} && chmod 0440 /etc/sudoers.d/{OPS_USER}
systemctl disable {" ".join(DISABLED_UNITS)}
systemctl set-default multi-user.target
# Per host, not per image: each host gets its own SSH host keys and machine id when it is made.
rm -f /etc/ssh/ssh_host_*
apt-get clean
: > /etc/machine-id
"""


def images_dir(state: Path) -> Path:
    return state / "images"


def current_name(release: str, checkout: Path) -> str:
    return image_name(release, recipe_hash(recipe(release, checkout)))


def is_complete(path: Path) -> bool:
    return (path / MARKER).is_file()


def clear_half_built(state: Path, log: Any) -> None:
    """Remove what a killed build left (caller holds the fleet lock, so no build is running)."""
    for lock in images_dir(state).glob(".#.build-*.lck"):  # systemd-nspawn's lock beside the image
        lock.unlink(missing_ok=True)
    for path in sorted(images_dir(state).glob(".build-*")):
        killed = kill_rooted_at(path)
        left = f" (killed {len(killed)} processes of the killed build)" if killed else ""
        print(f"fleet: removing half-built image {path}{left}", file=log, flush=True)
        remove_tree(path)


def remove_tree(path: Path) -> None:
    """rm -rf that first unmounts what a killed debootstrap left mounted inside, and never crosses a mount."""
    unmount_under(path)
    run(["rm", "-rf", "--one-file-system", str(path)])


def trust_this_machine() -> list[str]:
    """pip inside the build trusts what pip here trusts: this machine's CA bundle, bound read-only for the
    build only (a network that inspects TLS signs with a CA the image's own bundle lacks). Nothing of it
    stays in the image, and it is no part of the recipe."""
    bundle = os.environ.get("PIP_CERT") or "/etc/ssl/certs/ca-certificates.crt"
    if not Path(bundle).is_file():
        return []
    return [f"--bind-ro={Path(bundle).resolve()}:/run/build-ca.pem", "--setenv=PIP_CERT=/run/build-ca.pem"]


def build(release: str, checkout: Path, state: Path, log: Any) -> Path:
    """Return the current image of `release`, building it first if it is not on disk yet."""
    spec = recipe(release, checkout)
    name = image_name(release, recipe_hash(spec))
    final = images_dir(state) / name
    if is_complete(final):
        return final
    if final.exists():  # renamed but unmarked cannot happen; a directory without the marker is not ours
        remove_tree(final)
    tmp = images_dir(state) / f".build-{name}-{os.getpid()}"
    images_dir(state).mkdir(parents=True, exist_ok=True)
    debs = state / "cache" / release / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    print(f"fleet: building image {name} (debootstrap, then packages); log {tmp}.log", file=log, flush=True)
    with open(f"{tmp}.log", "w") as out:
        run(
            ["debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus,ca-certificates",
             f"--cache-dir={debs}", release, str(tmp), MIRROR],
            stdout=out, what=f"debootstrap {release} (log {tmp}.log)",
        )  # fmt: skip
        (tmp / "opt/toolkit-lab").mkdir(parents=True, exist_ok=True)
        (tmp / "opt/toolkit-lab/requirements.txt").write_text(spec["requirements"])
        run(
            ["systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--directory", str(tmp),
             "--resolv-conf=replace-host", "--timezone=off", *trust_this_machine(),
             "/bin/sh", "-c", spec["script"]],
            stdout=out, what=f"installing packages into the {release} image (log {tmp}.log)",
        )  # fmt: skip
    seconds = round(time.monotonic() - started)
    (tmp / MARKER).write_text(json.dumps({**spec, "built_seconds": seconds, "name": name}, indent=1))
    os.rename(tmp, final)
    shutil.move(f"{tmp}.log", f"{final}.log")
    print(f"fleet: image {name} built in {seconds} s", file=log, flush=True)
    return final


def prune(state: Path, current: list[str], in_use: list[str], log: Any) -> None:
    """Remove images of other recipes that no host's disk is made from."""
    root = images_dir(state)
    present = [p.name for p in root.iterdir() if p.is_dir()] if root.is_dir() else []
    for name in prunable_images(present, current, in_use):
        print(f"fleet: pruning old image {name}", file=log, flush=True)
        remove_tree(root / name)
        (root / f"{name}.log").unlink(missing_ok=True)

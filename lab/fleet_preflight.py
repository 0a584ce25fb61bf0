"""Can this machine run the lab fleet? One check per need, each failing with one line naming what is
missing and what to do. Missing Debian tools are installed with apt-get when we are root and apt works.

The decisions are pure functions of what was read (tested in tests/unit/test_fleet_preflight.py);
preflight() reads the machine and raises the first problem found as a FleetError.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from fleet_image import current_name, images_dir, is_complete
from fleet_spec import Fleet, FleetError
from fleet_sys import free_bytes, package_of, run

TOOLS = ("debootstrap", "systemd-nspawn", "ip", "ssh", "ssh-keygen", "nft", "mount", "umount")
# Measured here (2026-11-30): an image with every package and the demo's venv and wheels takes 0.80 GB
# (bookworm) and 0.84 GB (trixie), plus a .deb cache of 40 MB per release; a host's own layer was
# 41-105 MB after a few boots (mostly its journal), before any deployment. The margin covers the data
# and logs the roles and tests add.
IMAGE_BYTES = 1_300_000_000
HOST_BYTES = 300_000_000
MARGIN_BYTES = 200_000_000
# Where systemd inside the hosts and lab/fleet_host.py find the cgroup tree: cgroup2 alone, or hybrid.
CGROUP_ROOTS = ("/sys/fs/cgroup", "/sys/fs/cgroup/unified")


def not_root_problem(euid: int) -> str | None:
    """Namespaces, mounts and systemd-nspawn need root.

    >>> not_root_problem(0) is None
    True
    """
    if euid == 0:
        return None
    return (
        "fleet: must run as root (network namespaces, mounts and systemd-nspawn need it); run 'sudo make lab'"
    )


def missing_tools(found: Iterable[str]) -> list[str]:
    """The tools of TOOLS not in found, in TOOLS's order."""
    have = set(found)
    return [t for t in TOOLS if t not in have]


def packages_for(tools: Iterable[str]) -> list[str]:
    """The Debian packages that provide the tools.

    >>> packages_for(["systemd-nspawn", "debootstrap", "ssh", "ssh-keygen"])
    ['debootstrap', 'openssh-client', 'systemd-container']
    """
    return sorted({package_of(t) for t in tools})


def tools_problem(missing: list[str], apt_works: bool, tried: bool) -> str | None:
    """The line for tools still missing: what, which packages, and what to do."""
    if not missing:
        return None
    packages = " ".join(packages_for(missing))
    if not apt_works:
        return (
            f"fleet: {', '.join(missing)} missing and apt-get is not available here; "
            f"install the Debian packages {packages} (the lab needs Debian 12 or newer)"
        )
    when = "still missing after apt-get install" if tried else "missing"
    return f"fleet: {', '.join(missing)} {when}; run 'apt-get update && apt-get install -y {packages}'"


def disk_problem(state: Path, free: int, images: int, hosts: int) -> str | None:
    """Enough space for the images still to build and the hosts' disks still to make?

    >>> disk_problem(Path("/srv"), 10**10, 2, 7) is None
    True
    """
    need = images * IMAGE_BYTES + hosts * HOST_BYTES + MARGIN_BYTES
    if free >= need:
        return None
    return (
        f"fleet: {state} has {free / 1e9:.1f} GB free; the fleet needs about {need / 1e9:.1f} GB "
        f"({images} image(s) to build, {hosts} new host disk(s)); free space or set TOOLKIT_LAB_STATE "
        "to a directory on a larger disk"
    )


def userns_problem(max_user_namespaces: str | None) -> str | None:
    """The hosts' units run with PrivateUsers=true, which needs user namespaces (systemd makes one per unit).

    >>> "max_user_namespaces is 0" in userns_problem("0")
    True
    >>> userns_problem("15000") is None and userns_problem(None) is None
    True
    """
    if max_user_namespaces is None:
        return None  # a kernel without the knob has no such limit
    value = max_user_namespaces.strip()
    if value.isdigit() and int(value) > 0:
        return None
    return (
        f"fleet: user namespaces are disabled here (/proc/sys/user/max_user_namespaces is {value}), "
        "and the lab's units need them (PrivateUsers); run 'sysctl -w user.max_user_namespaces=15000'"
    )


def cgroup_problem(roots: dict[str, bool]) -> str | None:
    """roots: each cgroup root that has a cgroup.procs, and whether it is writable.

    >>> cgroup_problem({"/sys/fs/cgroup": False})[:44]
    'fleet: /sys/fs/cgroup is read-only here, and'
    >>> cgroup_problem({"/sys/fs/cgroup": True}) is None
    True
    """
    if not roots:
        return (
            f"fleet: no cgroup2 hierarchy at {' or '.join(CGROUP_ROOTS)}, which systemd in the hosts "
            "needs; mount it with 'mount -t cgroup2 none /sys/fs/cgroup' or run on a VM"
        )
    if not any(roots.values()):
        return (
            f"fleet: {', '.join(roots)} is read-only here, and each host needs a cgroup of its own; run on "
            "a VM or in a container with a writable cgroup (for example --cgroupns=private, CAP_SYS_ADMIN)"
        )
    return None


def netns_problem(returncode: int, stderr: str) -> str | None:
    """The answer of 'ip netns add' on a probe namespace."""
    if returncode == 0:
        return None
    why = (stderr.strip().splitlines() or ["no message"])[-1]
    return (
        f"fleet: no permission for network namespaces here ({why}); run on a VM or a privileged "
        "container with CAP_SYS_ADMIN and CAP_NET_ADMIN"
    )


def _check(problem: str | None) -> None:
    if problem:
        raise FleetError(problem)


def _ensure_tools() -> None:
    missing = missing_tools(t for t in TOOLS if shutil.which(t))
    if not missing:
        return
    apt_works = shutil.which("apt-get") is not None
    if apt_works:
        packages = packages_for(missing)
        print(f"fleet: installing {', '.join(packages)} (missing: {', '.join(missing)})", flush=True)
        update = run(["apt-get", "update", "-qq"], check=False)
        install = run(["apt-get", "install", "-y", "-qq", *packages], check=False)
        if update.returncode != 0 or install.returncode != 0:
            lines = ((install.stderr or update.stderr or "").strip().splitlines()) or ["no message"]
            raise FleetError(
                f"fleet: apt-get install {' '.join(packages)} failed ({lines[-1]}); "
                "check the apt sources and the network, then run again"
            )
    _check(tools_problem(missing_tools(t for t in TOOLS if shutil.which(t)), apt_works, tried=apt_works))


def _cgroup_roots() -> dict[str, bool]:
    return {r: os.access(r, os.W_OK) for r in CGROUP_ROOTS if Path(r, "cgroup.procs").exists()}


def preflight(fleet: Fleet, state: Path, checkout: Path, for_down: bool = False) -> None:
    _check(not_root_problem(os.geteuid()))
    _ensure_tools()
    if for_down:
        return
    probe = f"toolkit-probe-{os.getpid()}"
    made = run(["ip", "netns", "add", probe], check=False)
    _check(netns_problem(made.returncode, made.stderr or ""))
    run(["ip", "netns", "del", probe], check=False)
    _check(cgroup_problem(_cgroup_roots()))
    knob = Path("/proc/sys/user/max_user_namespaces")
    _check(userns_problem(knob.read_text() if knob.exists() else None))
    if "overlay" not in Path("/proc/filesystems").read_text():
        run(["modprobe", "overlay"], check=False)
        if "overlay" not in Path("/proc/filesystems").read_text():
            raise FleetError("fleet: the kernel has no overlay file system; load it with 'modprobe overlay'")
    state.mkdir(parents=True, exist_ok=True)
    kind = run(["stat", "-f", "-c", "%T", str(state)]).stdout.strip()
    if kind in ("overlayfs", "overlay"):
        raise FleetError(
            f"fleet: {state} is on an overlay file system, which cannot hold the hosts' overlay layers; "
            "set TOOLKIT_LAB_STATE to a directory on a real disk"
        )
    images = sum(1 for r in fleet.releases if not is_complete(images_dir(state) / current_name(r, checkout)))
    hosts = sum(1 for h in fleet.hosts if not (state / "hosts" / h.name / "upper").exists())
    _check(disk_problem(state, free_bytes(state), images, hosts))

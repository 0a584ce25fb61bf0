"""Can this machine run the lab fleet? One check per need, each failing with one line naming what is
missing and what to do. Missing Debian tools are installed with apt-get (we are root by then).
"""

from __future__ import annotations

import os
import shutil
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


def preflight(fleet: Fleet, state: Path, checkout: Path, for_down: bool = False) -> None:
    if os.geteuid() != 0:
        raise FleetError("fleet: must run as root (namespaces, mounts and systemd-nspawn need it); use sudo")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        packages = sorted({package_of(t) for t in missing})
        print(f"fleet: installing {', '.join(packages)} (missing: {', '.join(missing)})", flush=True)
        run(["apt-get", "update", "-qq"], what="apt-get update")
        run(["apt-get", "install", "-y", "-qq", *packages], what=f"apt-get install {' '.join(packages)}")
        still = [t for t in TOOLS if shutil.which(t) is None]
        if still:
            raise FleetError(
                f"fleet: {', '.join(still)} still missing after apt-get install; install it by hand"
            )
    if for_down:
        return
    probe = f"toolkit-probe-{os.getpid()}"
    made = run(["ip", "netns", "add", probe], check=False)
    if made.returncode != 0:
        why = (made.stderr.strip().splitlines() or ["no message"])[-1]
        raise FleetError(
            f"fleet: no permission for network namespaces here ({why}); run on a VM or a privileged "
            "container with CAP_SYS_ADMIN and CAP_NET_ADMIN"
        )
    run(["ip", "netns", "del", probe], check=False)
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
    need = images * IMAGE_BYTES + hosts * HOST_BYTES + 200_000_000
    free = free_bytes(state)
    if free < need:
        raise FleetError(
            f"fleet: {state} has {free / 1e9:.1f} GB free; the fleet needs about {need / 1e9:.1f} GB "
            f"({images} image(s) to build, {hosts} new host disk(s)); free space or set TOOLKIT_LAB_STATE"
        )

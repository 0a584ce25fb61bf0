"""The lab fleet's contact with this machine: commands, processes, mounts and network namespaces.

Every command goes through run(), which turns a failure into a one-line FleetError naming the command
and what it was doing. Nothing here decides anything; lab/fleet_spec.py does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO, Any

from fleet_spec import FleetError


def run(
    cmd: list[str],
    *,
    what: str = "",
    check: bool = True,
    stdout: IO[Any] | int | None = None,
    timeout: float = 3600,
) -> subprocess.CompletedProcess[str]:
    """Run a command of this fixed set (no shell); raise FleetError with its last line of error output."""
    capture = stdout is None
    try:
        proc = subprocess.run(  # noqa: S603 (argument lists built here, never from a shell string)
            cmd,
            stdout=subprocess.PIPE if capture else stdout,
            stderr=subprocess.PIPE if capture else subprocess.STDOUT,
            text=True,
            check=False,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError as exc:
        raise FleetError(
            f"fleet: {cmd[0]} is not installed; run 'apt-get install {package_of(cmd[0])}'"
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise FleetError(f"fleet: {what or cmd[0]}: no answer after {timeout:.0f} s") from exc
    if check and proc.returncode != 0:
        lines = (proc.stderr or "").strip().splitlines()
        tail = lines[-1] if lines else f"exit {proc.returncode}"
        raise FleetError(f"fleet: {what or ' '.join(cmd[:3])} failed: {tail}")
    return proc


def package_of(tool: str) -> str:
    return {
        "systemd-nspawn": "systemd-container",
        "ip": "iproute2",
        "ssh": "openssh-client",
        "ssh-keygen": "openssh-client",
        "nft": "nftables",
    }.get(tool, tool)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return False
    return fields[0] != "Z"  # a zombie has ended


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def kill(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def mountpoints() -> list[str]:
    """Mount points of this mount namespace, from /proc/self/mountinfo (octal escapes decoded)."""
    points = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        raw = line.split()[4]
        points.append(raw.encode().decode("unicode_escape"))
    return points


def is_mounted(path: Path) -> bool:
    return str(path) in mountpoints()


def unmount_under(path: Path) -> None:
    """Unmount everything at or below `path`, deepest first (lazily: a dying process may still hold it)."""
    prefix = str(path)
    for point in sorted(
        (p for p in mountpoints() if p == prefix or p.startswith(prefix + "/")), reverse=True
    ):
        run(["umount", "--lazy", point], what=f"unmounting {point}")


def netns_exists(name: str) -> bool:
    return Path(f"/run/netns/{name}").exists()


def netns_pids(name: str) -> list[int]:
    if not netns_exists(name):
        return []
    out = run(["ip", "netns", "pids", name], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def link_exists(name: str) -> bool:
    return Path(f"/sys/class/net/{name}").exists()


def free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def dir_bytes(path: Path) -> int:
    if not path.exists():
        return 0
    out = run(["du", "-sxb", str(path)], check=False).stdout.split()
    return int(out[0]) if out else 0


def kill_rooted_at(path: Path) -> list[int]:
    """SIGKILL every process whose root directory is `path` or whose command line names it.

    A systemd-nspawn killed with -9 leaves its container running (measured here: the build's apt-get
    went on without its nspawn), and in its own mount namespace readlink(/proc/PID/root) says "/":
    the root is matched by device and inode instead, which a bind or overlay mount keeps.
    """
    try:
        target = os.stat(path)
    except OSError:
        return []
    victims = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        pid = int(entry.name)
        try:
            st = os.stat(entry / "root")
            same_root = (st.st_dev, st.st_ino) == (target.st_dev, target.st_ino)
        except OSError:
            same_root = False
        if same_root or str(path) in " ".join(cmdline(pid)):
            victims.append(pid)
    for pid in victims:
        kill(pid)
    deadline = 10.0
    while deadline > 0 and any(pid_alive(p) for p in victims):
        time.sleep(0.1)
        deadline -= 0.1
    return victims

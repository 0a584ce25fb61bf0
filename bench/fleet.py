"""The lab's hosts as the benches reach them from this machine: addresses, SSH, superuser SQL.

Read from inventory/lab (the fleet): the database host (group ``postgresql``), the PgBouncer host
the benches start their own PgBouncer processes on (the first of group ``pgbouncer``), and each
host's SSH route as Ansible takes it (``ansible_user``, ``ansible_ssh_common_args`` with its one
template, ``{{ inventory_dir }}``). Input that holds secrets (SQL, config and auth files) goes on
ssh's standard input, never in a command line.
"""

from __future__ import annotations

import functools
import json
import shlex
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# A bench runs as `python bench/NAME.py`: its checkout's lab code (lab.drills) must be importable.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from lab.drills.harness import ssh_argv  # noqa: E402
from toolkit.adapters import inventory  # noqa: E402
from toolkit.adapters.errors import TargetError  # noqa: E402
from toolkit.domain.errors import InventoryError  # noqa: E402

INVENTORY = ROOT / "inventory" / "lab"


class FleetError(RuntimeError):
    """A lab host could not be reached or a command on it failed (one line: what and what to do)."""


@dataclass(frozen=True)
class Host:
    """One lab host: its inventory name, address and ssh command line (without the remote command)."""

    name: str
    address: str
    ssh: tuple[str, ...]


@functools.cache
def hosts() -> dict[str, tuple[Host, tuple[str, ...]]]:
    """Every host of inventory/lab with its groups, read as the toolkit reads an inventory, and its ssh
    command line built the way the drills build it (one builder: lab.drills.harness.ssh_argv)."""
    if not (INVENTORY / "hosts.yml").is_file():
        raise FleetError(f"{INVENTORY}/hosts.yml is missing: the benches run on the lab's fleet ('make lab')")
    try:
        data = inventory.load(str(INVENTORY))
    except (InventoryError, TargetError) as exc:
        raise FleetError(f"{INVENTORY}: {exc}") from None
    out = {}
    for name, hv in data.hostvars.items():
        groups = tuple(g for g, members in data.groups.items() if name in members and g != "all")
        address = str(hv.get("ansible_host") or name)
        out[name] = (Host(name, address, ssh_argv(name, hv, INVENTORY)), groups)
    return out


def first(group: str) -> Host:
    """The first host of an inventory group."""
    for host, groups in hosts().values():
        if group in groups:
            return host
    raise FleetError(f"no host of group {group!r} in {INVENTORY}: the benches need the lab's fleet")


def db_host() -> Host:
    """The database host."""
    return first("postgresql")


def pgbouncer_host() -> Host:
    """The PgBouncer host the benches start their own processes on (next to the lab's own, other ports)."""
    return first("pgbouncer")


def ssh(host: Host, command: str, stdin: str = "", timeout: float = 120, check: bool = True) -> str:
    """Run ``command`` on ``host`` as the lab's SSH user (``sudo -n`` in it for root); return stdout."""
    try:
        done = subprocess.run(  # noqa: S603 - ssh with the inventory's options; input on stdin
            [*host.ssh, command], input=stdin, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise FleetError(
            f"{host.name}: {command.split(maxsplit=1)[0]} gave no answer in {timeout:g} s"
        ) from None
    if check and done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        raise FleetError(f"{host.name}: {command[:80]!r} failed: {last[:300]}; is the lab up? ('make lab')")
    return done.stdout


def psql_super(sql: str, dbname: str = "postgres", timeout: float = 120) -> str:
    """SQL as the postgres superuser on the database host (peer auth over its socket; SQL on stdin)."""
    command = f"sudo -n -u postgres psql -X -q -At -v ON_ERROR_STOP=1 -d {shlex.quote(dbname)}"
    return ssh(db_host(), command, stdin=sql, timeout=timeout)


def run_python(host: Host, body: str, params: Mapping[str, Any], timeout: float = 60) -> str:
    """Run ``body`` as root with the host's python3, ``p`` holding ``params``: both on stdin, none in argv."""
    program = f"import json\np = json.loads({json.dumps(dict(params))!r})\n{body}"
    return ssh(host, "sudo -n python3 -", stdin=program, timeout=timeout)


# For run_python. START_UNIT: write p["files"] (name -> text, mode 0600) into the private directory
# p["dir"] of p["user"], then start p["argv"] as that user in the transient unit p["unit"], which
# ends on its own after p["max_s"]. CLEAN: stop the units matching p["units"] and remove the
# directories matching p["dirs"] (none when empty).
START_UNIT = """\
import os, pwd, subprocess
user = pwd.getpwnam(p["user"])
os.makedirs(p["dir"], mode=0o700, exist_ok=True)
os.chown(p["dir"], user.pw_uid, user.pw_gid)
for name, text in p["files"].items():
    path = os.path.join(p["dir"], name)
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchown(fd, user.pw_uid, user.pw_gid)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(path + ".new", path)
subprocess.run(["systemd-run", "--unit=" + p["unit"], "--collect", "--quiet", "--uid=" + p["user"],
                "--gid=" + p["user"], "-p", "RuntimeMaxSec=%d" % p["max_s"], *p["argv"]], check=True)
"""
CLEAN = """\
import glob, shutil, subprocess
subprocess.run(["systemctl", "stop", p["units"]], capture_output=True)
subprocess.run(["systemctl", "reset-failed", p["units"]], capture_output=True)
for d in glob.glob(p["dirs"]) if p["dirs"] else ():
    shutil.rmtree(d, ignore_errors=True)
"""

"""The database host on its own CPU: cpuset cgroups for the lab's hosts (lab-only, runs as root).

    python -m lab.fleet_cpus pin [--db-cpus 0] [--other-cpus 1]   database host on 0, the others on 1
    python -m lab.fleet_cpus unpin                                every host back on every CPU
    python -m lab.fleet_cpus show                                 each host's CPUs, read from its processes

On a 2-core machine the database, PgBouncer and the clients otherwise contend for the same cores, so a
pool-sizing sweep measures that contention as much as the pooler. `pin()` makes one cpuset cgroup per
host under /sys/fs/cgroup/cpuset/toolkit-lab/ and moves every process of the host into it (the host's
processes are the ones in its own cgroup tree, toolkit-lab/<host>, which lab/fleet_host.py starts it
in). A process the host forks later is born in its parent's cpuset, so new PostgreSQL backends, SSH
sessions and restarted services stay confined; taskset would cover only the processes that exist.
systemd inside the hosts manages the named systemd and the unified hierarchies only, so it never moves
a process out of its cpuset. `unpin()` moves every process back to the root cpuset (all CPUs) and
removes the cpusets. `lab/fleet.py up` and `down` call `release()`, so a killed run that left the hosts
pinned does not outlive the next `make lab-up` or `make lab-down`.

Which host is the database comes from the lab inventory (inventory/lab/hosts.yml, group postgresql);
the host list from lab/fleet.toml. Exit codes: 0 OK, 2 the lab is down or the cgroups refused,
64 usage (also a CPU list this machine lacks), 65 a bad fleet.toml or inventory.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
SPEC = CHECKOUT / "lab" / "fleet.toml"
INVENTORY = CHECKOUT / "inventory" / "lab" / "hosts.yml"
DATABASE_GROUP = "postgresql"
CPUSET_ROOT = Path("/sys/fs/cgroup/cpuset")
TOP = "toolkit-lab"
# Where lab/fleet_host.py starts each host in a cgroup of its own: the tree names the host's processes.
PROCESS_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")
# A host forks while its processes are moved; a child forked before its parent moved stays behind, so
# the move is repeated until a pass finds nothing left to move.
MOVE_ROUNDS = 20


class CpusError(Exception):
    """A one-line error for the operator; `code` is the exit code it ends with."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def lab_hosts() -> list[str]:
    """The lab's host names, in the order of lab/fleet.toml (parsed by lab/fleet_spec.py)."""
    # Imported here: lab/fleet.py imports this module from lab/ itself, where `lab.` does not resolve.
    from lab.fleet_spec import FleetError, parse_fleet  # noqa: PLC0415

    try:
        fleet = parse_fleet(tomllib.loads(SPEC.read_text()), str(SPEC))
    except (OSError, tomllib.TOMLDecodeError, FleetError) as exc:
        raise CpusError(f"fleet_cpus: cannot read the fleet from {SPEC}: {exc}", 65) from exc
    return [h.name for h in fleet.hosts]


def database_hosts() -> list[str]:
    """The hosts of the lab inventory's database group (postgresql), which must be lab hosts."""
    import yaml  # type: ignore[import-untyped]  # noqa: PLC0415 (only pin() and show() need it)

    try:
        doc = yaml.safe_load(INVENTORY.read_text())
        group = doc["all"]["children"][DATABASE_GROUP]
        names = list((group.get("hosts") or {}).keys())
    except (OSError, yaml.YAMLError, KeyError, TypeError, AttributeError) as exc:
        raise CpusError(
            f"fleet_cpus: no group {DATABASE_GROUP} in {INVENTORY} ({exc}); fix the inventory", 65
        ) from exc
    unknown = sorted(set(names) - set(lab_hosts()))
    if not names or unknown:
        raise CpusError(
            f"fleet_cpus: group {DATABASE_GROUP} of {INVENTORY} lists {names}, not lab hosts of {SPEC}; "
            "fix the inventory",
            65,
        )
    return names


def host_pids(host: str) -> list[int]:
    """Every process in the host's own cgroup tree (its systemd-nspawn, its init and all it started)."""
    for root in PROCESS_ROOTS:
        top = Path(root) / TOP / host
        if (top / "cgroup.procs").exists():
            pids: set[int] = set()
            for procs in top.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):  # a cgroup removed while we read
                    pids.update(int(p) for p in procs.read_text().split())
            return sorted(pids)
    return []


def require_lab(hosts: list[str]) -> dict[str, list[int]]:
    """Each host's processes; CpusError (2) if one has none: the lab is down."""
    found = {h: host_pids(h) for h in hosts}
    down = [h for h, pids in found.items() if not pids]
    if down:
        raise CpusError(f"fleet_cpus: host(s) {', '.join(down)} not running (no processes); run make lab", 2)
    return found


def cpuset_of(pid: int) -> str | None:
    """The pid's cpuset cgroup path ("/" is the root), or None once it has exited."""
    try:
        text = Path(f"/proc/{pid}/cpuset").read_text().strip()
    except OSError:
        return None
    return text or "/"


def cpus_allowed(pid: int) -> str | None:
    """Cpus_allowed_list of /proc/PID/status: the CPUs the kernel lets this process run on."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        return None
    return None


def _write(path: Path, value: str, what: str) -> None:
    try:
        path.write_text(value + "\n")
    except OSError as exc:
        online = (CPUSET_ROOT / "cpuset.cpus").read_text().strip()
        raise CpusError(
            f"fleet_cpus: {what}: writing {value!r} to {path} failed ({exc.strerror}); "
            f"give a CPU list within this machine's {online}",
            64 if exc.errno in (errno.EINVAL, errno.ERANGE) else 2,
        ) from exc


def _move(pid: int, cgroup: Path) -> None:
    try:
        (cgroup / "cgroup.procs").write_text(f"{pid}\n")
    except ProcessLookupError:
        pass  # it exited meanwhile
    except OSError as exc:
        if cpuset_of(pid) is not None:
            raise CpusError(f"fleet_cpus: moving pid {pid} into {cgroup} failed ({exc.strerror})") from exc


def _ensure_cpuset(path: Path, cpus: str, mems: str) -> None:
    path.mkdir(exist_ok=True)
    # A cpuset with no CPUs or memory nodes takes no process; a child's must lie within its parent's.
    _write(path / "cpuset.mems", mems, f"cpuset {path.name}")
    _write(path / "cpuset.cpus", cpus, f"cpuset {path.name}")


def _confine(pids_of: dict[str, list[int]]) -> None:
    """Move each host's processes into its cpuset until a whole pass finds nothing outside it."""
    for _ in range(MOVE_ROUNDS):
        moved = 0
        for host, pids in pids_of.items():
            target = CPUSET_ROOT / TOP / host
            want = f"/{TOP}/{host}"
            for pid in pids:
                current = cpuset_of(pid)
                if current is not None and current != want:
                    _move(pid, target)
                    moved += 1
        if not moved:
            return
        pids_of = {h: host_pids(h) for h in pids_of}
    raise CpusError(f"fleet_cpus: processes kept appearing outside their cpusets after {MOVE_ROUNDS} passes")


def check_root() -> None:
    if not (CPUSET_ROOT / "cgroup.procs").exists():
        raise CpusError(
            f"fleet_cpus: no cgroup v1 cpuset hierarchy at {CPUSET_ROOT}; this machine cannot pin", 2
        )
    if os.geteuid() != 0:
        raise CpusError("fleet_cpus: cpusets need root; run it as root (sudo)", 2)


def pin(db_cpus: str = "0", other_cpus: str = "1") -> None:
    """Confine the database host(s) to db_cpus and every other lab host to other_cpus. Idempotent."""
    check_root()
    for name, cpus in (("db_cpus", db_cpus), ("other_cpus", other_cpus)):
        if not cpus.strip():
            raise CpusError(f"fleet_cpus: {name} is empty; give a CPU list such as 0 or 0-1", 64)
    hosts = lab_hosts()
    database = set(database_hosts())
    pids_of = require_lab(hosts)
    cpus_of = {h: (db_cpus if h in database else other_cpus) for h in hosts}
    top = CPUSET_ROOT / TOP
    root_cpus = (CPUSET_ROOT / "cpuset.cpus").read_text().strip()
    mems = (CPUSET_ROOT / "cpuset.mems").read_text().strip()
    try:
        _ensure_cpuset(top, root_cpus, mems)
        for host, cpus in cpus_of.items():
            _ensure_cpuset(top / host, cpus, mems)
        _confine(pids_of)
    except BaseException:
        release()  # a pin that fails half-way leaves the lab as it is by default: unpinned
        raise


def release() -> list[str]:
    """Move every process out of the lab's cpusets into the root one (all CPUs) and remove the cpusets.
    Returns the hosts whose cpuset still held processes. Safe with the lab up or down, idempotent."""
    top = CPUSET_ROOT / TOP
    if not top.is_dir():
        return []
    held = []
    for cgroup in sorted(p for p in top.iterdir() if p.is_dir()):
        moved = False
        for _ in range(MOVE_ROUNDS):
            pids = [int(p) for p in (cgroup / "cgroup.procs").read_text().split()]
            if not pids:
                break
            moved = True
            for pid in pids:
                _move(pid, CPUSET_ROOT)
        if moved:
            held.append(cgroup.name)
        _rmdir(cgroup)
    _rmdir(top)
    return held


def _rmdir(path: Path) -> None:
    for _ in range(50):  # an exiting process may hold an empty cgroup for a moment
        try:
            path.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.05)
    raise CpusError(
        f"fleet_cpus: cannot remove {path}: still busy; see its cgroup.procs, then run unpin again"
    )


def unpin() -> None:
    """Every lab host back on every CPU (the root cpuset); the hosts keep running. Idempotent."""
    check_root()
    release()


def current() -> dict[str, str]:
    """host -> the CPU list its processes may run on, read from /proc/PID/status of every process of the
    host (its init and services alike). When they differ: "mixed: 0 (3), 0-1 (40)"; "" when it is down."""
    out = {}
    for host in lab_hosts():
        counts: dict[str, int] = {}
        for pid in host_pids(host):
            allowed = cpus_allowed(pid)
            if allowed is not None:
                counts[allowed] = counts.get(allowed, 0) + 1
        if len(counts) <= 1:
            out[host] = next(iter(counts), "")
        else:
            out[host] = "mixed: " + ", ".join(f"{c} ({n})" for c, n in sorted(counts.items()))
    return out


@contextlib.contextmanager
def pinned(db_cpus: str = "0", other_cpus: str = "1") -> Iterator[None]:
    """pin(), run the block, and unpin() whatever happens (an exception, KeyboardInterrupt)."""
    try:
        pin(db_cpus, other_cpus)
        yield
    finally:
        unpin()


def show() -> int:
    check_root()
    hosts = lab_hosts()
    require_lab(hosts)
    database = set(database_hosts())
    cpus = current()
    for host in hosts:
        role = "database" if host in database else ""
        print(f"{host:8} cpus {cpus[host]:12} {role}".rstrip())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.fleet_cpus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    pin_p = sub.add_parser("pin", help="the database host on --db-cpus, every other host on --other-cpus")
    pin_p.add_argument("--db-cpus", default="0", help="CPU list for the database host (default 0)")
    pin_p.add_argument("--other-cpus", default="1", help="CPU list for every other host (default 1)")
    sub.add_parser("unpin", help="every host back on every CPU")
    sub.add_parser("show", help="each host's CPUs, read from its processes")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 64 if exc.code else 0
    try:
        if args.command == "pin":
            pin(args.db_cpus, args.other_cpus)
            return show()
        if args.command == "unpin":
            unpin()
            return show()
        return show()
    except CpusError as exc:
        print(str(exc), file=sys.stderr)
        return exc.code


if __name__ == "__main__":
    sys.exit(main())

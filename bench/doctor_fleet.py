"""Doctor over a fleet: wall time of ``toolkit doctor`` against the number of PgBouncers it reads.

Starts ``max(N)`` PgBouncer processes on the lab's first PgBouncer host (bench/fleet.py), each on that
host's address and its own port 6433 + K (K = 0, 1, ...; the lab's PgBouncer keeps 6432), each a
transient systemd unit ``doctor-fleet-pgbouncer-*`` of the ``postgres`` user with its files in a
private directory ``/run/doctor-fleet-pgbouncer-*`` there, with the lab's database (the database host,
db ``app``) as their backend, no server connection opened ahead of demand
(min_pool_size 0) and one server connection at most each. Their admin and stats users are the lab's,
with SCRAM verifiers of the lab's passwords (read from ``.lab/``, never printed). For each N it writes an
inventory that lists the first N of them as the PgBouncer tier of two app nodes, plus the lab's
PostgreSQL and Redis at their hosts' addresses, then times ``toolkit doctor -i THAT --format json``
from this machine (interleaved across N, so drift
on the machine hits every N alike) and checks that the JSON says every target was read. It prints the
median wall time against N, the ratio to N = 1, and what the time is made of: ``ansible-inventory
--list`` of the same inventory (timed on its own) and the slowest target's read time from the JSON.
Every PgBouncer it started is stopped at the end, on error and on Ctrl-C too; a run killed before
that leaves units the next run removes first.

Goal (issue 6): 20 targets within 1.5 x one target's time.

Usage: ``python bench/doctor_fleet.py [--sizes 1,5,20,50] [--rounds 5] [--workdir DIR] [--json FILE]
[--out bench/results]`` (``make bench``). Results:
doctor_fleet.json (the table, the goal and every run) and doctor_fleet.md in --out; ``--json`` also
writes every run to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fleet as lab_fleet
from machine import machine

from toolkit.domain.scram import verifier_from_salt

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAB_SECRETS = ROOT / ".lab"
PGBOUNCER = "/usr/sbin/pgbouncer"  # Debian's, on HOST
PORT = 6433  # the first; the lab's own PgBouncer listens on 6432
HOST = lab_fleet.pgbouncer_host()
MARK = "doctor-fleet-pgbouncer-"
GOAL_N, GOAL = 20, 1.5
ADMIN_USER, STATS_USER = "pgbouncer_admin", "pgbouncer_stats"
UNIT_MAX_S = 1800  # a unit ends on its own after this, should the cleanup be skipped


def port(k: int) -> int:
    """The port of PgBouncer number ``k`` (0-based) on HOST."""
    if not 0 <= k < 250:
        raise ValueError(f"at most 250 PgBouncers fit on ports 6433-6682, asked for number {k + 1}")
    return PORT + k


def address(k: int) -> str:
    """Where PgBouncer number ``k`` listens, ``HOST:PORT``."""
    return f"{HOST.address}:{port(k)}"


def _secret(name: str) -> str:
    path = LAB_SECRETS / name
    if not path.is_file():
        raise SystemExit(f"doctor_fleet: {path} is missing: deploy the lab first with 'make lab'")
    return path.read_text().strip()


@dataclass
class Fleet:
    """PgBouncer processes this run started on HOST: their units and the directory of their files."""

    workdir: Path  # on HOST
    mark: str
    units: list[str] = field(default_factory=list)

    def addresses(self, n: int) -> list[str]:
        """The first ``n`` PgBouncers, ``HOST:PORT`` each."""
        return [address(k) for k in range(n)]

    def stop(self) -> None:
        """Stop every unit this run started (SIGTERM, then SIGKILL) and remove its files; never any other."""
        lab_fleet.run_python(
            HOST, lab_fleet.CLEAN, {"units": f"{self.mark}-*.service", "dirs": str(self.workdir)}
        )
        self.units.clear()


def running_units(mark: str = MARK) -> list[str]:
    """The units on HOST whose name starts with ``mark`` and that still run."""
    out = lab_fleet.ssh(HOST, f"systemctl list-units --plain --no-legend --state=active '{mark}*'")
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def _config(workdir: Path, k: int) -> str:
    name = f"pgb{k + 1}"
    return "\n".join(
        [
            "[databases]",
            f"app = host={lab_fleet.db_host().address} port=5432 dbname=app",
            "",
            "[pgbouncer]",
            f"listen_addr = {HOST.address}",
            f"listen_port = {port(k)}",
            "unix_socket_dir =",
            f"pidfile = {workdir / (name + '.pid')}",
            f"logfile = {workdir / (name + '.log')}",
            "auth_type = scram-sha-256",
            f"auth_file = {workdir / 'userlist.txt'}",
            f"admin_users = {ADMIN_USER}",
            f"stats_users = {STATS_USER}",
            "pool_mode = transaction",
            # Small on purpose: 50 of these must never take the lab database's connections.
            "default_pool_size = 1",
            "min_pool_size = 0",
            "reserve_pool_size = 0",
            "max_db_connections = 1",
            "max_client_conn = 20",
            "",
        ]
    )


def _userlist() -> str:
    """The admin and stats users with SCRAM verifiers (random salt) of the lab's passwords."""
    lines = []
    for user, secret_file in (
        (ADMIN_USER, "pgbouncer_admin_password"),
        (STATS_USER, "pgbouncer_stats_password"),
    ):
        verifier = verifier_from_salt(_secret(secret_file), secrets.token_bytes(16))
        lines.append(f'"{user}" "{verifier}"')
    return "\n".join(lines) + "\n"


def _wait_listening(k: int, running: Fleet, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST.address, port(k)), timeout=0.2):
            return
        time.sleep(0.1)
    log = lab_fleet.ssh(HOST, f"sudo -n tail -n 2 {running.workdir}/pgb{k + 1}.log", check=False).strip()
    raise RuntimeError(f"pgbouncer on {address(k)} not listening after {timeout:g} s: {log[-300:]}")


@contextlib.contextmanager
def fleet(count: int) -> Iterator[Fleet]:
    """Start ``count`` PgBouncers on HOST; stop them and remove their files when the block ends, however."""
    stale = {"units": f"{MARK}*.service", "dirs": f"/run/{MARK}*"}  # what a killed run left
    lab_fleet.run_python(HOST, lab_fleet.CLEAN, stale)
    mark = MARK + secrets.token_hex(4)
    running = Fleet(Path("/run") / mark, mark)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        userlist = _userlist()
        for k in range(count):
            unit = f"{mark}-pgb{k + 1}"
            running.units.append(unit)
            params = {
                "dir": str(running.workdir),
                "user": "postgres",  # PgBouncer refuses to run as root
                "files": {"userlist.txt": userlist, f"pgb{k + 1}.ini": _config(running.workdir, k)},
                "unit": unit,
                "max_s": UNIT_MAX_S,
                "argv": [PGBOUNCER, str(running.workdir / f"pgb{k + 1}.ini")],
            }
            lab_fleet.run_python(HOST, lab_fleet.START_UNIT, params)
        for k in range(count):
            _wait_listening(k, running)
        yield running
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, previous)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through fleet()'s finally, which stops the PgBouncers


def write_inventory(path: Path, pgbouncers: Sequence[str]) -> Path:
    """An inventory (docs/inventory.md): these PgBouncers (``HOST:PORT``) as the tier of two app nodes, the
    lab's database and Redis cache at their hosts' addresses.

    Written as JSON, which is valid YAML and needs no YAML library here.
    """
    hosts = {}
    for i, where in enumerate(pgbouncers):
        host, listen_port = where.rsplit(":", 1)
        hosts[f"pgb{i + 1}"] = {
            "ansible_host": host,
            "pgbouncer_listen_addr": host,
            "pgbouncer_listen_port": int(listen_port),
        }
    redis = lab_fleet.first("redis")
    doc = {
        "all": {
            "vars": {
                "database_host": lab_fleet.db_host().address,
                "database_port": 5432,
                "database_max_connections": 100,
                "database_superuser_reserved_connections": 3,
                "database_cores": 2,
                "database_spindles": 0,
            },
            "children": {
                "pgbouncer": {
                    "hosts": hosts,
                    "vars": {
                        "pgbouncer_pool_mode": "transaction",
                        "pgbouncer_databases": [{"name": "app", "dbname": "app"}],
                        "pgbouncer_auth_users": [{"name": "app"}],
                    },
                },
                "redis": {
                    "hosts": {
                        redis.name: {
                            "ansible_host": redis.address,
                            "redis_listen_addr": redis.address,
                            "redis_ops_user": "toolkit",  # the lab's (inventory/lab/group_vars/redis)
                            "redis_listen_port": 6379,
                            "redis_maxmemory_mb": 256,
                            "toolkit_redis_key_prefix": "lab:",
                        }
                    }
                },
                "django": {
                    "hosts": {
                        "app-1": {
                            "django_server": "wsgi_gthread",
                            "django_workers": 3,
                            "django_threads": 4,
                            "django_celery_concurrency": 2,
                            "django_extra_clients": 1,
                        },
                        "app-2": {"django_server": "asgi", "django_workers": 2, "django_threads": 4},
                    }
                },
            },
        }
    }
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


@dataclass(frozen=True)
class Run:
    """One doctor run: its wall time, exit code and what the JSON says about the targets."""

    n: int
    wall: float
    code: int
    targets: int
    read: int
    slowest: float
    unread: tuple[str, ...]


def time_doctor(inventory: Path, n: int) -> Run:
    """Run doctor once; the wall time covers the whole command, inventory read included."""
    argv = [
        str(BIN / "toolkit"),
        "doctor",
        "-i",
        str(inventory),
        "--format",
        "json",
        "--secrets",
        str(LAB_SECRETS),
    ]
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603
    wall = time.perf_counter() - start
    if proc.returncode not in (0, 1, 2, 3):
        raise RuntimeError(f"doctor exited {proc.returncode} for N={n}: {proc.stderr.strip()[-300:]}")
    doc = json.loads(proc.stdout)
    targets = doc["targets"]
    unread = tuple(f"{t['address']}: {t['cause']}" for t in targets if not t["ok"])
    slowest = max((t["elapsed_s"] for t in targets), default=0.0)
    return Run(n, wall, proc.returncode, len(targets), len(targets) - len(unread), slowest, unread)


def time_inventory(inventory: Path) -> float:
    """Wall time of ``ansible-inventory --list`` of the same inventory: doctor's first step."""
    start = time.perf_counter()
    subprocess.run(  # noqa: S603 - fixed argv
        [str(BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=120,
    )
    return time.perf_counter() - start


def measure(
    sizes: Sequence[int], rounds: int, workdir: Path, warmup: bool = True
) -> tuple[dict[int, list[tuple[Run, float]]], Path]:
    """Start the fleet, then time doctor and ansible-inventory for every N, interleaved, ``rounds`` times.

    Returns the runs by N, and the directory the (now stopped and removed) fleet's files were in.
    """
    results: dict[int, list[tuple[Run, float]]] = {n: [] for n in sizes}
    with fleet(max(sizes)) as running:
        inventories = {n: write_inventory(workdir / f"fleet-{n}.yml", running.addresses(n)) for n in sizes}
        for n in sizes if warmup else ():  # warm the file cache and the bytecode, not counted
            time_doctor(inventories[n], n)
        for r in range(rounds):
            order = list(sizes) if r % 2 == 0 else list(reversed(sizes))
            for n in order:
                results[n].append((time_doctor(inventories[n], n), time_inventory(inventories[n])))
    return results, running.workdir


def summarise(results: dict[int, list[tuple[Run, float]]]) -> dict[str, Any]:
    """Medians per N, the ratio to the smallest N, the goal, and whether every run read every target."""
    sizes = sorted(results)
    base = statistics.median(run.wall for run, _ in results[sizes[0]])
    rows = []
    all_read = True
    for n in sizes:
        runs = [run for run, _ in results[n]]
        wall = statistics.median(r.wall for r in runs)
        all_read &= all(r.read == r.targets == n + 2 for r in runs)
        rows.append(
            {
                "n": n,
                "targets": runs[0].targets,
                "read_min": min(r.read for r in runs),
                "median_s": round(wall, 3),
                "min_s": round(min(r.wall for r in runs), 3),
                "ratio": round(wall / base, 3),
                "ansible_inventory_s": round(statistics.median(t for _, t in results[n]), 3),
                "slowest_target_s": round(statistics.median(r.slowest for r in runs), 4),
                "unread": sorted({why for r in runs for why in r.unread}),
            }
        )
    goal = None
    if GOAL_N in results and sizes[0] == 1:
        ratio = statistics.median(run.wall for run, _ in results[GOAL_N]) / base
        goal = {"n": GOAL_N, "ratio": round(ratio, 3), "limit": GOAL, "met": ratio <= GOAL}
    return {"base_n": sizes[0], "rows": rows, "goal": goal, "all_read": all_read}


def report(summary: dict[str, Any], rounds: int) -> list[str]:
    """The lines printed: wall time against N, the goal, whether every target was read."""
    lines = [
        f"toolkit doctor --format json over N PgBouncers + the lab's PostgreSQL and Redis ({rounds} rounds)",
        f"{'N':>3} {'targets':>7} {'read':>5} {'median s':>9} {'min s':>6}"
        f" {'ratio to N=' + str(summary['base_n']):>14} {'ansible-inventory s':>20} {'slowest target s':>17}",
    ]
    for r in summary["rows"]:
        lines.append(
            f"{r['n']:>3} {r['targets']:>7} {r['read_min']:>5} {r['median_s']:9.2f} {r['min_s']:6.2f}"
            f" {r['ratio']:14.2f} {r['ansible_inventory_s']:20.2f} {r['slowest_target_s']:17.3f}"
        )
        lines += [f"    N={r['n']}: not read: {why}" for why in r["unread"]]
    g = summary["goal"]
    if g is not None:
        verdict = "met" if g["met"] else "missed"
        lines.append(
            f"goal: {g['n']} PgBouncers at most {g['limit']} x one PgBouncer's time: "
            f"{g['ratio']:.2f} x, {verdict}"
        )
    lines.append(f"every target read in every run: {'yes' if summary['all_read'] else 'NO'}")
    return lines


def markdown(doc: dict[str, Any]) -> str:
    """doctor_fleet.md: the table and the goal."""
    meta, summary = doc["meta"], doc["summary"]
    lines = [
        f"# Doctor over a fleet ({meta['date']}, {meta['machine']})",
        "",
        f"`{meta['command']}`: wall time of `toolkit doctor --format json` over N PgBouncers (on "
        f"{HOST.name}, ports {PORT} and up) plus the lab's PostgreSQL and Redis, from the controller, "
        f"{meta['rounds']} rounds interleaved, medians"
        f"{', after one untimed run of each N' if meta['warmup'] else ''}.",
        "",
        f"| N | targets | read (min) | median s | min s | ratio to N={summary['base_n']} | "
        "ansible-inventory s | slowest target s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in summary["rows"]:
        lines.append(
            f"| {r['n']} | {r['targets']} | {r['read_min']} | {r['median_s']:.2f} | {r['min_s']:.2f} | "
            f"{r['ratio']:.2f} | {r['ansible_inventory_s']:.2f} | {r['slowest_target_s']:.3f} |"
        )
    lines.append("")
    for r in summary["rows"]:
        lines += [f"N={r['n']}: not read: {why}" for why in r["unread"]]
    g = summary["goal"]
    if g is not None:
        verdict = "met" if g["met"] else "missed"
        lines.append(
            f"Goal: {g['n']} PgBouncers within {g['limit']} x one PgBouncer's time: "
            f"{g['ratio']:.2f} x, {verdict}."
        )
    lines.append(f"Every target read in every run: {'yes' if summary['all_read'] else 'no'}.")
    return "\n".join(lines) + "\n"


def main() -> int:
    """Parse, measure, print; exit 1 if doctor failed to read a target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,5,20,50", help="numbers of PgBouncers, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workdir", help="directory for the inventories (default: a new temp dir)")
    parser.add_argument("--json", dest="json_out", help="also write every run to this file")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed first run of each N")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for the results")
    args = parser.parse_args()
    try:
        sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--sizes must be whole numbers separated by commas, got {args.sizes!r}")
    if not sizes or sizes[0] < 1 or sizes[-1] > 250 or args.rounds < 1:
        parser.error("--sizes must be between 1 and 250, --rounds at least 1")
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = Path(args.workdir)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="doctor-fleet-")))
        workdir.mkdir(parents=True, exist_ok=True)
        results, fleet_dir = measure(sizes, args.rounds, workdir, warmup=not args.no_warmup)
    summary = summarise(results)
    print("\n".join(report(summary, args.rounds)))
    runs = {
        str(n): [
            {**run.__dict__, "unread": list(run.unread), "ansible_inventory_s": inv} for run, inv in runs
        ]
        for n, runs in results.items()
    }
    if args.json_out:
        Path(args.json_out).write_text(
            json.dumps({"fleet_dir": str(fleet_dir), "runs": runs}, indent=2) + "\n"
        )
    now = dt.datetime.now(dt.UTC)
    doc = {
        "schema": {"name": "bench.doctor_fleet", "version": 1},
        "meta": {
            "date": now.strftime("%Y-%m-%d"),
            "finished_at": now.isoformat(timespec="seconds"),
            "machine": machine(),
            "rounds": args.rounds,
            "sizes": sizes,
            "warmup": not args.no_warmup,
            "command": "python bench/doctor_fleet.py " + " ".join(sys.argv[1:]),
        },
        "summary": summary,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "doctor_fleet.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "doctor_fleet.md").write_text(markdown(doc))
    print(f"written: {out / 'doctor_fleet.json'}, .md")
    return 0 if summary["all_read"] else 1


if __name__ == "__main__":
    sys.exit(main())

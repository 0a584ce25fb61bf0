"""Doctor over a fleet: wall time of ``toolkit doctor`` against the number of PgBouncers it reads.

Starts ``max(N)`` PgBouncer processes, each on its own loopback address 127.0.0.K (K = 2, 3, ...) and port
6433 (the lab's PgBouncer has 127.0.0.1:6432), all in a temporary directory, with the lab's database
(127.0.0.1:5432, db ``app``) as their backend, no server connection opened ahead of demand
(min_pool_size 0) and one server connection at most each. Their admin and stats users are the lab's,
with SCRAM verifiers of the lab's passwords (read from ``.lab/``, never printed). For each N it writes an
inventory that lists the first N of them as the PgBouncer tier of two app nodes, plus the lab's
PostgreSQL and Redis, then times ``toolkit doctor -i THAT --format json`` (interleaved across N, so drift
on the machine hits every N alike) and checks that the JSON says every target was read. It prints the
median wall time against N, the ratio to N = 1, and what the time is made of: ``ansible-inventory
--list`` of the same inventory (timed on its own) and the slowest target's read time from the JSON.
Every PgBouncer it started is stopped at the end, on error and on Ctrl-C too.

Goal (issue 6): 20 targets within 1.5 x one target's time.

Usage: ``python bench/doctor_fleet.py [--sizes 1,5,20,50] [--rounds 5] [--workdir DIR] [--json FILE]
[--out bench/results]`` (``make bench``; run as root it runs PgBouncer as ``postgres``). Results:
doctor_fleet.json (the table, the goal and every run) and doctor_fleet.md in --out; ``--json`` also
writes every run to FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import pwd
import secrets
import shutil
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

from machine import machine

from toolkit.domain.scram import verifier_from_salt

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LAB_SECRETS = ROOT / ".lab"
PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
PORT = 6433
FIRST_HOST = 2  # 127.0.0.2: the lab's own services listen on 127.0.0.1
GOAL_N, GOAL = 20, 1.5
ADMIN_USER, STATS_USER = "pgbouncer_admin", "pgbouncer_stats"


def address(k: int) -> str:
    """The loopback address of PgBouncer number ``k`` (0-based)."""
    if not 0 <= k < 250:
        raise ValueError(f"at most 250 PgBouncers fit on 127.0.0.2-251, asked for number {k + 1}")
    return f"127.0.0.{FIRST_HOST + k}"


def _secret(name: str) -> str:
    path = LAB_SECRETS / name
    if not path.is_file():
        raise SystemExit(f"doctor_fleet: {path} is missing: deploy the lab first with 'make lab'")
    return path.read_text().strip()


@dataclass
class Fleet:
    """PgBouncer processes this run started, and the directory that holds their files."""

    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def addresses(self, n: int) -> list[str]:
        """The first ``n`` PgBouncers' addresses."""
        return [address(k) for k in range(n)]

    def stop(self) -> None:
        """Stop every process this run started (SIGTERM, then SIGKILL after 5 s); never any other."""
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self.procs.clear()


def _config(workdir: Path, k: int) -> str:
    name = f"pgb{k + 1}"
    return "\n".join(
        [
            "[databases]",
            "app = host=127.0.0.1 port=5432 dbname=app",
            "",
            "[pgbouncer]",
            f"listen_addr = {address(k)}",
            f"listen_port = {PORT}",
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


def _wait_listening(
    host: str, port: int, proc: subprocess.Popen[bytes], log: Path, timeout: float = 10
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise RuntimeError(f"pgbouncer on {host}:{port} exited with {proc.returncode}: {' '.join(tail)}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError(f"pgbouncer on {host}:{port} not listening after {timeout:g} s")


@contextlib.contextmanager
def fleet(count: int) -> Iterator[Fleet]:
    """Start ``count`` PgBouncers; stop them all and remove their files when the block ends, however it ends.

    Their files live in a new directory of the system's temp dir (which the ``postgres`` user can reach,
    unlike a root-only working directory), owned by ``postgres`` when this runs as root.
    """
    workdir = Path(tempfile.mkdtemp(prefix="doctor-fleet-pgbouncer-"))
    run_as = pwd.getpwnam("postgres") if os.geteuid() == 0 else None
    running = Fleet(workdir)
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        (workdir / "userlist.txt").write_text(_userlist())
        os.chmod(workdir / "userlist.txt", 0o600)
        if run_as is not None:  # PgBouncer refuses to run as root: its files belong to postgres
            os.chown(workdir, run_as.pw_uid, run_as.pw_gid)
            os.chown(workdir / "userlist.txt", run_as.pw_uid, run_as.pw_gid)
        for k in range(count):
            ini = workdir / f"pgb{k + 1}.ini"
            ini.write_text(_config(workdir, k))
            argv = [PGBOUNCER, *(["-u", "postgres"] if run_as else []), str(ini)]
            with (workdir / f"pgb{k + 1}.out").open("wb") as out:
                running.procs.append(
                    subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)  # noqa: S603
                )
        for k, proc in enumerate(running.procs):
            _wait_listening(address(k), PORT, proc, workdir / f"pgb{k + 1}")
        yield running
    finally:
        running.stop()
        signal.signal(signal.SIGTERM, previous)
        shutil.rmtree(workdir, ignore_errors=True)


def _terminate(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)  # unwinds through fleet()'s finally, which stops the PgBouncers


def write_inventory(path: Path, pgbouncers: Sequence[str]) -> Path:
    """An inventory (docs/inventory.md): these PgBouncers as the tier of two app nodes, the lab DB and Redis.

    Written as JSON, which is valid YAML and needs no YAML library here.
    """
    hosts = {f"pgb{i + 1}": {"ansible_host": a, "pgbouncer_listen_addr": a} for i, a in enumerate(pgbouncers)}
    doc = {
        "all": {
            "vars": {
                "ansible_connection": "local",
                "database_host": "127.0.0.1",
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
                        "pgbouncer_listen_port": PORT,
                        "pgbouncer_pool_mode": "transaction",
                        "pgbouncer_databases": [{"name": "app", "dbname": "app"}],
                        "pgbouncer_auth_users": [{"name": "app"}],
                    },
                },
                "redis": {
                    "hosts": {
                        "lab-redis": {
                            "ansible_host": "127.0.0.1",
                            "redis_listen_addr": "127.0.0.1",
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
        f"`{meta['command']}`: wall time of `toolkit doctor --format json` over N PgBouncers (127.0.0.2 "
        f"and up) plus the lab's PostgreSQL and Redis, {meta['rounds']} rounds interleaved, medians"
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

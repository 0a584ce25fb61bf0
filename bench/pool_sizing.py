"""Pool sizing: the toolkit's plan against a sweep of pool sizes, calibrate's advice and fixed sizes.

Single pool, per workload (pgbench TPC-B; a Django-like transaction: BEGIN; 4 SELECT by primary key;
1 UPDATE; COMMIT; and the lab's demo Django app over HTTP, ``GET /books/`` under wrk: bench/demo_http.py),
``--clients`` clients through one PgBouncer in transaction mode on the lab's first PgBouncer host:

- the sweep: default_pool_size over ``--sizes``;
- the toolkit's plan: ``toolkit.domain.sizing.plan`` for this bench's topology (one PgBouncer process,
  one pool, the clients as the app's demand (for HTTP: the demo instance's gunicorn workers x threads),
  the lab database's capacity, hold factor and cpu share from inventory/lab; pinned, 1 core of its own),
  every setting it sizes applied;
- calibrate's advice: before the rounds, a short sweep of ``--sizes`` per workload (``--cal-duration``
  s each), and the knee of it (``toolkit.domain.calibrate.knee``: the smallest pool within 5% of the
  best throughput whose p99 is within 1.2 x the best's), what ``toolkit calibrate --sweep`` advises;
- fixed baselines (``--fixed``): 20 (PgBouncer's default), 100 (a widely used role's default), and
  2 x cores + spindles when the sweep has it;
- the ceiling (``--direct``, none for HTTP): straight to PostgreSQL, no pooler.

``--pin on`` runs everything with the database host on CPU 0 and every other host plus this machine's
clients on CPU 1 (bench/sizing_runs.py, lab/fleet_cpus.py); ``--pin both`` runs every configuration both
ways in every round. Multiplied topology (not with ``--no-multiplied``): 2 PgBouncer processes on one
port (so_reuseport) x 2 databases x 2 users under the same clients, the fixed 20 per pool against the
plan for that topology: TPS, client errors, logins refused, and a non-superuser "migration" login
straight to PostgreSQL during the run.

pgbench and wrk run here, on the controller, across the lab's network, as an app node's load would.
Every configuration runs once per round, rounds interleaved (odd rounds in reverse order); the report
(bench/sizing_report.py) gives medians and per-round ratios to the sweep's best with their band.

Usage: ``python bench/pool_sizing.py [--duration 10] [--rounds 5] [--clients 200] [--sizes 4,8,...]
[--workloads tpcb,django,http] [--pin off|on|both] [--quick] [--out bench/results]`` (``make bench``).
Results: pool_sizing.json, .md and .png in --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import demo_http  # noqa: E402
import sizing_report as report  # noqa: E402
from machine import machine  # noqa: E402
from pgbouncer_lab import OTHER, OWNER, BenchLab, LabError  # noqa: E402
from sizing_advice import calibration_sweep, knee_rule  # noqa: E402
from sizing_chart import chart  # noqa: E402
from sizing_runs import (  # noqa: E402
    MODES,
    SCALE,
    Config,
    HttpLoad,
    Job,
    Load,
    PgbenchLoad,
    fixed,
    interleaved,
    run_multiplied,
    run_single,
)

from toolkit.adapters import inventory, pgbench  # noqa: E402
from toolkit.domain.calibrate import MAX_ROUNDS  # noqa: E402
from toolkit.domain.inventory import topology_from_inventory  # noqa: E402
from toolkit.domain.models import AppNode, DatabaseCapacity, PgBouncerHost, ServerKind, Topology  # noqa: E402
from toolkit.domain.plan import PGBOUNCER_SIZED_SETTINGS, Plan  # noqa: E402
from toolkit.domain.sizing import plan_or_error  # noqa: E402

SCHEMA = {"name": "bench.pool_sizing", "version": 2}
PLAN_SETTINGS = PGBOUNCER_SIZED_SETTINGS  # the one list of the settings the plan sizes
PGBOUNCER_DEFAULT = 20


def lab_database() -> DatabaseCapacity:
    """The lab database's capacity as inventory/lab describes it."""
    data = inventory.load(str(ROOT / "inventory" / "lab"))
    return topology_from_inventory(data.groups, data.hostvars).database


def mode_database(db: DatabaseCapacity, mode: str) -> DatabaseCapacity:
    """What the inventory would say in each layout.

    Pinned, the database host has one core of its own: database_cores 1, database_cpu_share 1.
    Unpinned, it shares both cores with everything else, as inventory/lab says (database_cpu_share 0.5:
    db1 used 0.87-0.94 of the 2 cores under pgbench; each run's "cpu" in the JSON).
    """
    return replace(db, cores=1, cpu_share=1.0) if mode == "pinned" else db


def bench_topology(
    db: DatabaseCapacity, clients: int, processes: int, dbs: int, users: int, node: AppNode | None = None
) -> Topology:
    """This bench as a topology: one PgBouncer host, ``clients`` as one app node's demand (or ``node``)."""
    host = PgBouncerHost(
        "bench",
        databases=tuple(f"bench_{i}" for i in range(dbs)) if dbs > 1 else ("bench",),
        users=(OWNER, OTHER)[:users],
        processes=processes,
    )
    node = node or AppNode("pgbench", ServerKind.WSGI_SYNC, workers=clients)
    node = replace(node, pgbouncer_hosts=("bench",))
    return Topology(database=db, pgbouncers=(host,), app_nodes=(node,))


def sized(topology: Topology) -> tuple[Plan, dict[str, int]]:
    """The one sizing function's plan and the PgBouncer settings it gives (exit with its refusal)."""
    p, error = plan_or_error(topology)
    if p is None:
        raise LabError(f"the sizing refused this bench's topology: {error}")
    return p, {s: p.pgbouncer[0].value(s) for s in PLAN_SETTINGS}


# --- configurations ---------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; --quick is a tiny run for the harness test."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--sizes", default="4,8,12,16,24,32", help="pool sizes of the sweep")
    p.add_argument("--fixed", default="20,100", help="fixed pool sizes others ship, or 'none'")
    p.add_argument("--direct", default="16,32", help="client counts straight to PostgreSQL, or 'none'")
    p.add_argument("--workloads", default="tpcb,django,http")
    p.add_argument(
        "--pin", choices=tuple(MODES), default="off", help="the database on its own CPU: off, on, both"
    )
    p.add_argument(
        "--rounds-unpinned", type=int, default=0, help="with --pin both: unpinned in the first N rounds only"
    )
    p.add_argument(
        "--cal-duration", type=float, default=4.0, help="seconds per size of the calibration sweep"
    )
    p.add_argument(
        "--cal-rounds", type=int, default=1, help="calibration sweep rounds (as calibrate --sweep --rounds)"
    )
    p.add_argument("--http-workers", type=int, default=4, help="gunicorn processes of the demo instance")
    p.add_argument("--no-multiplied", action="store_true", help="skip the multiplied topology")
    p.add_argument(
        "--quick", action="store_true", help="tiny (options not given): sizes 2,4, 8 clients, 1 s, 1 round"
    )
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    if args.quick:  # its values for the options not given
        tiny = {"sizes": "2,4", "clients": 8, "duration": 1.0, "rounds": 1, "direct": "2", "fixed": "20"}
        tiny |= {"http_workers": 1, "cal_duration": 1.0}
        for key, value in tiny.items():
            if getattr(args, key) == p.get_default(key):
                setattr(args, key, value)

    def ints(text: str) -> list[int]:
        return [] if text.strip() == "none" else sorted({int(x) for x in text.split(",")})

    try:
        args.size_list, args.direct_list, args.fixed_list = (
            ints(args.sizes),
            ints(args.direct),
            ints(args.fixed),
        )
    except ValueError:
        p.error("--sizes, --fixed and --direct take comma-separated integers, such as 2,4,8 (or none)")
    args.workload_list = [w.strip() for w in args.workloads.split(",")]
    unknown = [w for w in args.workload_list if w not in report.WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(report.WORKLOADS)}")
    if (
        args.duration < 1
        or args.rounds < 1
        or args.clients < 4
        or not args.size_list
        or min(args.size_list) < 1
    ):
        p.error("--duration >= 1, --rounds >= 1, --clients >= 4 and sizes >= 1")
    if not 1 <= args.http_workers <= args.clients or args.cal_duration < 1:
        p.error("--http-workers between 1 and --clients, --cal-duration >= 1")
    if not 1 <= args.cal_rounds <= MAX_ROUNDS:
        p.error(f"--cal-rounds from 1 to {MAX_ROUNDS} (as calibrate --sweep --rounds)")
    args.modes = MODES[args.pin]
    if not 0 <= args.rounds_unpinned <= args.rounds:
        p.error("--rounds-unpinned between 0 (all rounds) and --rounds")
    unpinned = args.rounds_unpinned or args.rounds
    args.mode_rounds = {m: unpinned if m == "unpinned" else args.rounds for m in args.modes}
    return args


def http_threads(args: argparse.Namespace) -> int:
    """Threads per demo process so that the instance holds every client at once."""
    return math.ceil(int(args.clients) / int(args.http_workers))


def app_node(w: str, args: argparse.Namespace) -> AppNode | None:
    """The app node the plan sizes for: the demo instance for HTTP; None (pgbench's clients) otherwise."""
    if w != "http":
        return None
    return AppNode("demo", ServerKind.WSGI_GTHREAD, workers=args.http_workers, threads=http_threads(args))


def single_configs(
    args: argparse.Namespace, db: DatabaseCapacity, w: str, plan_settings: dict[str, int], advised: int
) -> list[Config]:
    """What one workload measures in one mode: the sweep, the plan, the advice, the baselines, direct."""
    n, formula = args.clients, 2 * db.cores + db.spindles
    share = f" x cpu share {db.cpu_share:g}" if db.cpu_share != 1 else ""
    hold = f"hold factor {db.hold_factor:g}, {db.cores} core(s){share}"
    cfgs = [Config(f"sweep-{s}", f"sweep {s}", "sweep", s, fixed(s, n), n) for s in args.size_list]
    cfgs.append(
        Config("plan", f"toolkit plan ({hold})", "plan", plan_settings["default_pool_size"], plan_settings, n)
    )
    cfgs.append(
        Config("advice", "calibrate's advice (knee of the sweep)", "advice", advised, fixed(advised, n), n)
    )
    names = {PGBOUNCER_DEFAULT: "PgBouncer's default", 100: "a widely used role's default"}
    cfgs += [
        Config(f"fixed-{s}", f"{s} ({names.get(s, 'fixed')})", "baseline", s, fixed(s, n), n)
        for s in args.fixed_list
    ]
    if w != "http":
        cfgs += [
            Config(f"direct-{c}", f"direct to PostgreSQL, {c} clients", "direct", c, {}, c)
            for c in args.direct_list
        ]
    _ = formula  # reported from the sweep's run at that size when the sweep has it
    return cfgs


def measure_all(
    args: argparse.Namespace, db: DatabaseCapacity, log: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, dict[str, list[Config]]], list[Config]]:
    """Set up, run calibrate's sweeps, then every configuration once per round, interleaved."""
    skipped: dict[str, str] = {}
    if "http" in args.workload_list and (why := demo_http.unavailable()):
        raise LabError(f"the http workload cannot run: {why}")
    plans = {
        m: {
            w: sized(bench_topology(mode_database(db, m), args.clients, 1, 1, 1, app_node(w, args)))[1]
            for w in args.workload_list
        }
        for m in args.modes
    }
    multi_settings = sized(bench_topology(db, args.clients, 2, 2, 2))[1]
    with BenchLab() as lab:
        log(lab.prepare(SCALE))
        script = lab.dir / "django_like.sql"
        script.write_text(pgbench.DJANGO_LIKE)
        loads: dict[str, Load] = {}
        for w in args.workload_list:
            if w == "http":
                demo_http.clean_leftovers()
                demo = demo_http.DemoHttp(args.http_workers, http_threads(args), lab.mark)
                lab.cleanups.append(demo.stop)
                lab.serve_role(demo.user)
                loads[w] = HttpLoad(demo, lab.free_port(), warmup=min(1.0, args.duration / 2))
            else:
                loads[w] = PgbenchLoad(script if w == "django" else None)
        extra: dict[str, Any] = {"postgresql": lab.settings(), "advice": {}, "skipped": skipped, "pins": {}}
        per: dict[str, dict[str, list[Config]]] = {}
        for m in args.modes:
            extra["advice"][m], per[m] = {}, {}
            for w in args.workload_list:
                cal = calibration_sweep(lab, args, loads[w], w, m, log)
                extra["advice"][m][w] = cal
                log(f"calibrate's advice ({w}, {m}): pool {cal['pool_size']}")
                per[m][w] = single_configs(args, mode_database(db, m), w, plans[m][w], cal["pool_size"])
        multi = (
            []
            if args.no_multiplied
            else [
                Config(
                    "multi-fixed",
                    f"fixed {PGBOUNCER_DEFAULT} per pool",
                    "baseline",
                    PGBOUNCER_DEFAULT,
                    fixed(PGBOUNCER_DEFAULT, args.clients),
                    args.clients,
                ),
                Config(
                    "multi-plan",
                    f"toolkit plan (hold factor {db.hold_factor:g})",
                    "plan",
                    multi_settings["default_pool_size"],
                    multi_settings,
                    args.clients,
                ),
            ]
        )

        def single_job(w: str, c: Config, m: str) -> Callable[[int], None]:
            return lambda rnd: c.runs.append(
                {"round": rnd + 1, **run_single(lab, c, loads[w], args.duration, f"{m}-{w}-{c.key}-{rnd}")}
            )

        def multi_job(c: Config) -> Callable[[int], None]:
            return lambda rnd: c.runs.append(
                {"round": rnd + 1, **run_multiplied(lab, c.settings, script, args, f"{c.key}-{rnd}")}
            )

        jobs: list[Job] = [
            (m, f"{w} {c.label}", single_job(w, c, m))
            for m in args.modes
            for w in args.workload_list
            for c in per[m][w]
        ]
        jobs += [(args.modes[0], f"multiplied {c.label}", multi_job(c)) for c in multi]
        jobs.sort(key=lambda j: args.modes.index(j[0]))  # each mode's jobs together (stable)
        interleaved(args.rounds, jobs, log, extra["pins"], args.mode_rounds)
    return extra, per, multi


def main(argv: list[str] | None = None) -> int:
    """Run the bench and write pool_sizing.json, .md and .png."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on SIGTERM too
    t0 = time.monotonic()
    load_before = os.getloadavg()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.0f} s] {msg}", flush=True)

    db = lab_database()
    try:
        extra, per, multi = measure_all(args, db, log)
    except LabError as exc:
        print(f"pool_sizing: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    now = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "meta": {
            "date": now.strftime("%Y-%m-%d"),
            "finished_at": now.isoformat(timespec="seconds"),
            "machine": machine(),
            "elapsed_s": round(elapsed),
            "load_before": " ".join(f"{x:.2f}" for x in load_before),
            "load_after": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "duration_s": args.duration,
            "cal_duration_s": args.cal_duration,
            "cal_rounds": args.cal_rounds,
            "rounds": args.rounds,
            "rounds_per_mode": args.mode_rounds,
            "clients": args.clients,
            "sizes": args.size_list,
            "fixed": args.fixed_list,
            "direct": args.direct_list,
            "pin": args.pin,
            "unpinned_cpu_share": db.cpu_share,
            "modes": list(args.modes),
            "pins": extra["pins"],
            "scale": SCALE,
            "postgresql": extra["postgresql"],
            "pgbench_threads": 2,
            "skipped": extra["skipped"],
            "advice_rule": knee_rule(),
            "ratio_definition": "per round: value / the sweep's best configuration's (highest median) "
            "value in the same round; median and min-max (and IQR in the JSON) across rounds",
            "command": "python bench/pool_sizing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "plan": {},
        "advice": extra["advice"],
        "single": {},
    }
    for m in args.modes:
        mdb = mode_database(db, m)
        doc["plan"][m] = {}
        for w in args.workload_list:
            node = app_node(w, args)
            p, settings = sized(bench_topology(mdb, args.clients, 1, 1, 1, node))
            demand = f"{node.workers} x {node.threads} threads" if node else "clients"
            doc["plan"][m][w] = {
                "topology": f"1 process x 1 database x 1 user, demand = {demand}, "
                f"database {mdb.cores} core(s) x cpu share {mdb.cpu_share:g}",
                "settings": settings,
                "active_target": p.budget.active_target,
                "hold_factor": mdb.hold_factor,
                "database_cores": mdb.cores,
                "database_cpu_share": mdb.cpu_share,
            }
        doc["single"][m] = {
            w: report.workload_report(per[m][w], 2 * mdb.cores + mdb.spindles) for w in args.workload_list
        }
    if "http" in args.workload_list:
        doc["meta"]["http"] = {
            "endpoint": demo_http.ENDPOINT,
            "instance": f"a demo instance of its own on {demo_http.app_host().name} ({demo_http.NODE}): "
            f"gunicorn gthread, {args.http_workers} workers x {http_threads(args)} threads, CONN_MAX_AGE 0, "
            "cache in memory",
            "load": "wrk on the controller, one keep-alive connection per client, "
            f"{min(1.0, args.duration / 2):g} s warm-up per run not counted",
        }
    if multi:
        multi_plan, multi_settings = sized(bench_topology(db, args.clients, 2, 2, 2))
        doc["multiplied"] = report.multiplied_report(
            multi, multi_settings, multi_plan, doc["single"][args.modes[0]]
        )
    write_reports(doc, out)
    return 0


def write_reports(doc: dict[str, Any], out: Path) -> None:
    """pool_sizing.json, .md (printed too) and .png under ``out``."""
    (out / "pool_sizing.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    lines = report.markdown(doc)
    (out / "pool_sizing.md").write_text("\n".join(lines) + "\n")
    chart(doc, out / "pool_sizing.png")
    print("\n".join(lines))
    print(f"\nwritten: {out / 'pool_sizing.json'}, .md, .png ({doc['meta']['elapsed_s'] / 60:.1f} min)")


if __name__ == "__main__":
    sys.exit(main())

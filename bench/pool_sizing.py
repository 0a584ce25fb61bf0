"""Pool sizing: the toolkit's plan against a sweep of pool sizes and the fixed sizes others ship.

Single pool, per workload (pgbench TPC-B; a Django-like transaction: BEGIN; 4 SELECT by primary
key; 1 UPDATE; COMMIT; and the lab's demo Django app over HTTP, ``GET /books/`` under wrk, when
the lab deployed it: bench/demo_http.py), ``--clients`` clients through one PgBouncer in
transaction mode:

- the sweep: default_pool_size over ``--sizes`` (2..64);
- the toolkit's plan: ``toolkit.domain.sizing.plan`` for this bench's topology (one PgBouncer process,
  one pool, the clients as the app's demand (for HTTP: the demo instance's gunicorn workers x threads),
  the lab database's capacity from inventory/lab, its hold factor 5), every setting it sizes applied;
- the calibrated plan: the same with the hold factor measured by ``toolkit.domain.calibrate`` from SHOW
  STATS while the plan ran (a calibration run per workload before the rounds);
- fixed baselines: 20 (PgBouncer's default), 2 x cores + spindles = 4 (the sweep's run at 4), 100 (a
  widely used role's default);
- the ceiling: straight to PostgreSQL, no pooler, with ``--direct`` clients (16 and 32; for HTTP, wrk
  connections to an instance whose database is PostgreSQL itself).

For HTTP the "TPS" columns are requests per second and the p99 is wrk's; each run starts its own demo
instance (gunicorn gthread, ``--http-workers`` processes x enough threads for the clients) and a 2 s
warm-up that is not counted. Without the demo app (or wrk) the HTTP workload is skipped and says why.

Multiplied topology: 2 PgBouncer processes on one port (so_reuseport) x 2 databases x 2 users = 8
pools under the same clients (4 pgbench processes, one per (database, user)), the fixed size 20 per
pool (8 x 20 x 2 processes overruns max_connections) against the plan for that topology; TPS, client
errors, server logins refused (PgBouncer's log), and whether a non-superuser "migration" connection
straight to PostgreSQL gets in during the run.

On the lab's fleet (bench/pgbouncer_lab.py): pgbench runs here, on the controller, against the bench's
PgBouncer processes on the first PgBouncer host's address (and the ceiling against the database host's),
so every transaction crosses the lab's network as an app node's would; the controller is where the
measuring happens (pgbench's latency log and wrk stay local), and on this one machine every host shares
its cores anyway.

Every configuration runs once per round, rounds interleaved (odd rounds in reverse order) so that
drift hits all alike; the tables give medians. Each PgBouncer is started for its run and stopped after
it (bench/pgbouncer_lab.py), so no server connection outlives its run.

Usage: ``python bench/pool_sizing.py [--duration 15] [--rounds 2] [--clients 200] [--sizes 2,4,...]
[--workloads tpcb,django,http] [--http-workers 4] [--quick] [--out bench/results]`` (``make bench``).
Results: pool_sizing.json, .md and .png in --out.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import demo_http  # noqa: E402
from machine import machine  # noqa: E402
from pgbouncer_lab import BENCH_HOST, DATABASE, OTHER, OWNER, PG_PORT, BenchLab, LabError  # noqa: E402

from toolkit.adapters import inventory, pgbench  # noqa: E402
from toolkit.domain.calibrate import database_hold_factor, inventory_hold_factor, measure  # noqa: E402
from toolkit.domain.inventory import topology_from_inventory  # noqa: E402
from toolkit.domain.models import AppNode, DatabaseCapacity, PgBouncerHost, ServerKind, Topology  # noqa: E402
from toolkit.domain.plan import PGBOUNCER_SIZED_SETTINGS, Plan  # noqa: E402
from toolkit.domain.sizing import plan_or_error  # noqa: E402

SCHEMA = {"name": "bench.pool_sizing", "version": 1}
SCALE = 10
WORKLOADS = {
    "tpcb": "pgbench TPC-B (builtin)",
    "django": "Django-like (BEGIN; 4 SELECT by pk; 1 UPDATE; COMMIT)",
    "http": "demo Django app over HTTP (GET /books/, wrk; requests/s)",
}
UNIT = {"http": "requests/s"}  # what the "TPS" columns count; transactions per second otherwise
PLAN_SETTINGS = PGBOUNCER_SIZED_SETTINGS  # the one list of the settings the plan sizes
TPS_GOAL, P99_GOAL = 0.95, 1.2
PGBOUNCER_DEFAULT, ROLE_DEFAULT = 20, 100


@dataclass
class Config:
    """One thing measured: a PgBouncer configuration, or PostgreSQL directly."""

    key: str
    label: str
    kind: str  # sweep, plan, calibrated, baseline, direct
    pool: int | None
    settings: dict[str, int] = field(default_factory=dict)
    clients: int = 0
    runs: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Medians over the rounds."""

        def med(key: str) -> float | None:
            values = [r[key] for r in self.runs if r.get(key) is not None]
            return statistics.median(values) if values else None

        return {
            "tps": med("tps"),
            "p99_ms": med("p99_ms"),
            "p50_ms": med("p50_ms"),
            "hold_factor": med("hold_factor"),
            "errors": sum(r["failed"] + r["aborted_clients"] for r in self.runs),
            "login_failures": sum(r.get("login_failures", 0) for r in self.runs),
        }


def lab_database() -> DatabaseCapacity:
    """The lab database's capacity as inventory/lab describes it."""
    data = inventory.load(str(ROOT / "inventory" / "lab"))
    return topology_from_inventory(data.groups, data.hostvars).database


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


def fixed(pool: int, clients: int) -> dict[str, int]:
    """A fixed pool size with PgBouncer's other defaults (reserve 0, no caps); room for every client."""
    return {"default_pool_size": pool, "max_client_conn": clients + 50}


# --- running ----------------------------------------------------------------------------------------


class PgbenchLoad:
    """pgbench against the bench database (its builtin TPC-B, or a script)."""

    database = DATABASE

    def __init__(self, script: Path | None) -> None:
        self.script = script

    def reset(self, lab: BenchLab) -> None:
        """Vacuum the small tables and empty the history, as pgbench does before a run without -n."""
        lab.reset_tables()

    @contextlib.contextmanager
    def ready(
        self, lab: BenchLab, port: int, cfg: Config, args: argparse.Namespace, tag: str
    ) -> Iterator[Callable[[], dict[str, Any]]]:
        """Nothing to start: the load is a pgbench process, run by the function yielded."""

        def go() -> dict[str, Any]:
            run = pgbench.Run(
                lab.endpoint(port),
                clients=cfg.clients,
                threads=2,
                duration=args.duration,
                env=lab.env,
                log_prefix=lab.dir / f"log-{tag}",
                script=self.script,
                scale=SCALE,
            )
            lab.runs.append(run)
            try:
                res = run.wait()
            finally:
                run.stop()  # on an interrupt, before it leaves the list close() cleans up
                lab.runs.remove(run)
            return {
                "tps": res.tps,
                "p50_ms": res.p50_ms,
                "p99_ms": res.p99_ms,
                "transactions": res.transactions,
                "failed": res.failed,
                "aborted_clients": res.aborted_clients,
                "pgbench_exit": res.returncode,
                "error": res.error,
            }

        yield go


class HttpLoad:
    """wrk against an instance of the demo app whose database is the run's PgBouncer (or PostgreSQL)."""

    def __init__(self, demo: demo_http.DemoHttp, warmup: float) -> None:
        self.demo, self.warmup = demo, warmup
        self.database = demo.database

    def reset(self, lab: BenchLab) -> None:
        """Nothing: GET /books/ only reads."""

    @contextlib.contextmanager
    def ready(
        self, lab: BenchLab, port: int, cfg: Config, args: argparse.Namespace, tag: str
    ) -> Iterator[Callable[[], dict[str, Any]]]:
        """Start the instance, warm it up (not counted), yield the measured load, stop it."""
        host, db_port = self.demo.direct if cfg.kind == "direct" else (BENCH_HOST.address, port)
        self.demo.start(host, db_port)
        try:
            self.demo.load(cfg.clients, self.warmup)  # every worker booted, imports and URLconf loaded
            yield lambda: self.demo.load(cfg.clients, args.duration)
        finally:
            self.demo.stop()


Load = PgbenchLoad | HttpLoad


def run_single(lab: BenchLab, cfg: Config, load: Load, args: argparse.Namespace, tag: str) -> dict[str, Any]:
    """One run of one configuration; the PgBouncer (and a demo instance) live only for the run."""
    load.reset(lab)
    before = lab.backends()
    loadavg = os.getloadavg()[0]
    bouncers = []
    stats0: list[dict[str, Any]] = []
    stats1: list[dict[str, Any]] = []
    port = PG_PORT
    try:
        if cfg.kind != "direct":
            bouncers = lab.start(cfg.settings, {load.database: load.database})
            port = bouncers[0].port
        with load.ready(lab, port, cfg, args, tag) as go:
            if bouncers:
                with bouncers[0].admin() as console:
                    stats0 = console.stats()
            started = time.monotonic()
            out = go()
            elapsed = time.monotonic() - started
            if bouncers:
                with bouncers[0].admin() as console:
                    stats1 = console.stats()
    finally:
        lab.stop(bouncers)
    out.update({"backends_before": before, "loadavg_1m_before": loadavg, "port": port})
    if bouncers:
        pools = [m for m in measure("bench", stats0, stats1, elapsed) if m.database == load.database]
        out["hold_factor"] = database_hold_factor(pools)
        out["connections_in_use"] = pools[0].in_use if pools else None
        out["login_failures"] = sum(len(b.login_failures()) for b in bouncers)
    return out


def run_multiplied(
    lab: BenchLab, settings: dict[str, int], script: Path, args: argparse.Namespace, tag: str
) -> dict[str, Any]:
    """2 PgBouncer processes (so_reuseport) x 2 databases x 2 users under the clients, and a bypass probe."""
    lab.reset_tables()
    before = lab.backends()
    load = os.getloadavg()[0]
    bouncers = lab.start(settings, {"bench_0": "bench", "bench_1": "bench"}, processes=2)
    port = bouncers[0].port
    per = max(1, args.clients // 4)
    runs = [
        pgbench.Run(
            lab.endpoint(port, user, db),
            clients=per,
            threads=1,
            duration=args.duration,
            env=lab.env,
            log_prefix=lab.dir / f"log-{tag}-{db}-{user}",
            script=script,
            scale=SCALE,
        )
        for db in ("bench_0", "bench_1")
        for user in (OWNER, OTHER)
    ]
    lab.runs.extend(runs)
    probes: list[dict[str, Any]] = []

    def probe() -> None:
        for at in (0.35, 0.6, 0.85):
            time.sleep(max(0.0, at * args.duration - (time.monotonic() - start)))
            t = time.monotonic() - start
            backends = lab.backends()
            probes.append({"at_s": round(t, 1), "error": lab.try_direct_login(), "backends": backends})

    start = time.monotonic()
    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    try:
        results = [r.wait() for r in runs]
    finally:
        for r in runs:
            r.stop()
            lab.runs.remove(r)
    prober.join(timeout=30)
    failures = [ln for b in bouncers for ln in b.login_failures()]
    lab.stop(bouncers)
    latencies = [x for r in results for x in r.latencies_ms]
    return {
        "tps": sum(r.tps for r in results),
        "p99_ms": pgbench.percentile(latencies, 99),
        "p50_ms": pgbench.percentile(latencies, 50),
        "failed": sum(r.failed for r in results),
        "aborted_clients": sum(r.aborted_clients for r in results),
        "pgbench_errors": [r.error for r in results if r.error],
        "login_failures": len(failures),
        "login_failure_example": failures[0].split(" ", 3)[-1][:200] if failures else "",
        "backends_before": before,
        "loadavg_1m_before": load,
        "backends_peak": max((p["backends"]["client_backends"] for p in probes), default=None),
        "migration_probes": [{"at_s": p["at_s"], "error": p["error"]} for p in probes],
        "migration_refused": sum(p["error"] is not None for p in probes),
    }


def replace_duration(args: argparse.Namespace, duration: float) -> argparse.Namespace:
    """The same options with another run duration (the calibration runs are shorter)."""
    return argparse.Namespace(**{**vars(args), "duration": duration})


def interleaved(
    rounds: int, jobs: list[tuple[str, Callable[[int], None]]], log: Callable[[str], None]
) -> None:
    """Every job once per round; odd rounds run in reverse order."""
    for rnd in range(rounds):
        order = jobs if rnd % 2 == 0 else list(reversed(jobs))
        for i, (label, job) in enumerate(order, 1):
            log(f"round {rnd + 1}/{rounds}, {i}/{len(order)}: {label}")
            job(rnd)


# --- report -----------------------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 0) -> str:
    """A number for a table, '-' when missing."""
    return "-" if value is None else f"{value:.{digits}f}"


def workload_report(configs: list[Config], formula: int) -> dict[str, Any]:
    """Medians, ratios to the sweep's best and the goal for one workload."""
    rows = []
    sweep = [c for c in configs if c.kind == "sweep"]
    best = max(sweep, key=lambda c: c.summary()["tps"] or 0.0)
    bs = best.summary()
    for c in configs:
        s = c.summary()
        tps_ratio = s["tps"] / bs["tps"] if s["tps"] and bs["tps"] else None
        p99_ratio = s["p99_ms"] / bs["p99_ms"] if s["p99_ms"] and bs["p99_ms"] else None
        rows.append(
            {
                "key": c.key,
                "label": c.label,
                "kind": c.kind,
                "pool": c.pool,
                "clients": c.clients,
                "settings": c.settings,
                **s,
                "tps_ratio": tps_ratio,
                "p99_ratio": p99_ratio,
                "runs": c.runs,
            }
        )
    if f"sweep-{formula}" in {c.key for c in configs}:
        r = next(r for r in rows if r["key"] == f"sweep-{formula}")
        rows.append(
            {
                **r,
                "key": "formula",
                "kind": "baseline",
                "runs": [],
                "label": f"2 x cores + spindles = {formula} (the sweep's run at {formula})",
            }
        )
    order = {"sweep": 0, "plan": 1, "calibrated": 2, "baseline": 3, "direct": 4}
    rows.sort(key=lambda r: (order[r["kind"]], r["kind"] != "sweep" or r["pool"], r["pool"] or 0))
    goals = {}
    for r in rows:
        if r["kind"] in ("plan", "calibrated"):
            ok = (r["tps_ratio"] or 0) >= TPS_GOAL and (r["p99_ratio"] or 99) <= P99_GOAL
            goals[r["kind"]] = {"pass": ok, "tps_ratio": r["tps_ratio"], "p99_ratio": r["p99_ratio"]}
    return {"best": {"key": best.key, "pool": best.pool, **bs}, "rows": rows, "goal": goals}


def table_lines(name: str, rep: dict[str, Any]) -> list[str]:
    """The markdown table of one workload."""
    lines = [
        f"### {WORKLOADS[name]}",
        "",
        f"| configuration | pool | {UNIT.get(name, 'TPS')} (median) | p99 ms | ratio to best | "
        "p99 / best's | hold factor | errors | logins refused |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rep["rows"]:
        lines.append(
            f"| {r['label']} | {r['pool'] if r['pool'] is not None else '-'} | {fmt(r['tps'])} | "
            f"{fmt(r['p99_ms'], 1)} | {fmt(r['tps_ratio'], 2)} | {fmt(r['p99_ratio'], 2)} | "
            f"{fmt(r['hold_factor'], 2)} | {r['errors']} | {r['login_failures']} |"
        )
    b = rep["best"]
    lines.append("")
    lines.append(
        f"Best of the sweep: pool {b['pool']}, {fmt(b['tps'])} {UNIT.get(name, 'TPS')}, "
        f"p99 {fmt(b['p99_ms'], 1)} ms."
    )
    for kind, g in rep["goal"].items():
        lines.append(
            f"Goal ({kind}: TPS >= {TPS_GOAL:.0%} of best and p99 <= {P99_GOAL} x best's): "
            f"{'PASS' if g['pass'] else 'MISS'} (TPS {fmt(g['tps_ratio'], 2)}, p99 {fmt(g['p99_ratio'], 2)})"
        )
    return lines


def multiplied_lines(multi: dict[str, Any]) -> list[str]:
    """The markdown table of the multiplied topology."""
    lines = [
        "### Multiplied topology: " + multi["topology"],
        "",
        "| configuration | pool per (process, pool) | server conns wanted | TPS (median) | TPS / best | "
        "p99 ms | client errors | logins refused | migration refused (probes) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in multi["rows"]:
        lines.append(
            f"| {r['label']} | {r['pool']} | {r['wanted']} | {fmt(r['tps'])} | {fmt(r['tps_ratio'], 2)} | "
            f"{fmt(r['p99_ms'], 1)} | {r['errors']} | {r['login_failures']} | "
            f"{r['migration_refused']}/{r['migration_probes']} |"
        )
    g = multi["goal"]
    lines += [
        "",
        f"Best TPS referred to: {multi['best_reference']}.",
        f"Goal (plan: zero errors, bypass free, TPS >= {TPS_GOAL:.0%} of best): "
        f"{'PASS' if g['pass'] else 'MISS'} ({g['why']})",
    ]
    return lines


def chart(doc: dict[str, Any], path: Path) -> None:
    """TPS against pool size per workload (log2 x), plan and baselines marked, direct ceiling as a line."""
    import matplotlib as mpl  # noqa: PLC0415 - only the report needs it

    mpl.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    names = list(doc["single"])
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 4.8), squeeze=False)
    markers = {
        "plan": ("*", "tab:green", 260),
        "calibrated": ("P", "tab:purple", 150),
        "baseline": ("s", "tab:red", 90),
    }
    for ax, name in zip(axes[0], names, strict=True):
        rows = doc["single"][name]["rows"]
        sweep = sorted((r for r in rows if r["kind"] == "sweep"), key=lambda r: r["pool"])
        ax.plot(
            [r["pool"] for r in sweep],
            [r["tps"] for r in sweep],
            "o-",
            color="tab:blue",
            label="sweep (median)",
        )
        for r in rows:
            if r["kind"] in markers and r["tps"] is not None:
                m, colour, size = markers[r["kind"]]
                ax.scatter([r["pool"]], [r["tps"]], marker=m, s=size, color=colour, zorder=3)
                short = {"plan": f"plan {r['pool']}", "calibrated": f"calibrated {r['pool']}"}.get(
                    r["kind"], r["label"].split(" (")[0]
                )
                ax.annotate(
                    short,
                    (r["pool"], r["tps"]),
                    textcoords="offset points",
                    xytext=(6, 6 if r["kind"] != "baseline" else -14),
                    fontsize=8,
                )
        direct = [r for r in rows if r["kind"] == "direct" and r["tps"]]
        if direct:
            top = max(direct, key=lambda r: r["tps"])
            ax.axhline(
                top["tps"], ls="--", color="grey", label=f"direct to PostgreSQL, {top['clients']} clients"
            )
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted({r["pool"] for r in rows if r["kind"] != "direct"}))
        ax.get_xaxis().set_major_formatter(mpl.ticker.ScalarFormatter())
        ax.set_xlabel("default_pool_size")
        ax.set_ylabel(f"{UNIT.get(name, 'TPS')} (median)")
        ax.set_ylim(bottom=0)
        ax.set_title(WORKLOADS[name], fontsize=10)
        ax.grid(True, alpha=0.3)
        for kind, (m, colour, _) in markers.items():
            ax.scatter(
                [],
                [],
                marker=m,
                color=colour,
                label={
                    "plan": "toolkit plan",
                    "calibrated": "calibrated plan",
                    "baseline": "fixed baselines",
                }[kind],
            )
        ax.legend(fontsize=8, loc="lower center")
    meta = doc["meta"]
    fig.suptitle(
        f"Pool size vs TPS, {meta['clients']} clients, one PgBouncer in transaction mode - "
        f"{meta['date']}, {meta['machine']}",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --- main -------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command line; --quick is a tiny run for the harness test."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--duration", type=float, default=15.0, help="seconds per pgbench run")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--sizes", default="2,4,8,16,32,64", help="pool sizes of the sweep")
    p.add_argument("--direct", default="16,32", help="client counts straight to PostgreSQL")
    p.add_argument(
        "--workloads", default="tpcb,django,http", help="http is skipped, saying why, without the demo app"
    )
    p.add_argument(
        "--http-workers",
        type=int,
        default=4,
        help="gunicorn processes of the demo instance (threads: clients / workers)",
    )
    p.add_argument("--no-multiplied", action="store_true", help="skip the multiplied topology")
    p.add_argument("--quick", action="store_true", help="tiny: sizes 2,4, 8 clients, 2 s, 1 round, 1 worker")
    p.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.sizes, args.clients, args.duration, args.rounds, args.direct = "2,4", 8, 2.0, 1, "2,4"
        args.http_workers = 1
    try:
        args.size_list = sorted({int(x) for x in args.sizes.split(",")})
        args.direct_list = sorted({int(x) for x in args.direct.split(",")})
    except ValueError:
        p.error("--sizes and --direct take comma-separated integers, such as 2,4,8")
    args.workload_list = [w.strip() for w in args.workloads.split(",")]
    unknown = [w for w in args.workload_list if w not in WORKLOADS]
    if unknown:
        p.error(f"unknown workload(s) {', '.join(unknown)}; known: {', '.join(WORKLOADS)}")
    if args.duration < 1 or args.rounds < 1 or args.clients < 4 or min(args.size_list) < 1:
        p.error("--duration >= 1, --rounds >= 1, --clients >= 4 and sizes >= 1")
    if not 1 <= args.http_workers <= args.clients:
        p.error("--http-workers between 1 and --clients")
    return args


def single_configs(
    args: argparse.Namespace, db: DatabaseCapacity, plan_settings: dict[str, int], cal: dict[str, Any]
) -> list[Config]:
    """What one workload measures: the sweep, both plans, the fixed baselines, the direct ceiling."""
    n, formula = args.clients, 2 * db.cores + db.spindles
    hold = f"hold factor {db.hold_factor:g}, inventory/lab"
    cfgs = [Config(f"sweep-{s}", f"sweep {s}", "sweep", s, fixed(s, n), n) for s in args.size_list]
    cfgs += [
        Config(
            "plan", f"toolkit plan ({hold})", "plan", plan_settings["default_pool_size"], plan_settings, n
        ),
        Config(
            "calibrated",
            f"calibrated plan (hold factor {cal['database_hold_factor']:g}, measured)",
            "calibrated",
            cal["settings"]["default_pool_size"],
            cal["settings"],
            n,
        ),
        Config(
            "pgbouncer-default",
            f"{PGBOUNCER_DEFAULT} (PgBouncer's default)",
            "baseline",
            PGBOUNCER_DEFAULT,
            fixed(PGBOUNCER_DEFAULT, n),
            n,
        ),
    ]
    if formula not in args.size_list:
        cfgs.append(
            Config("formula", f"2 x cores + spindles = {formula}", "baseline", formula, fixed(formula, n), n)
        )
    cfgs.append(
        Config(
            "role-default",
            f"{ROLE_DEFAULT} (a widely used role's default)",
            "baseline",
            ROLE_DEFAULT,
            fixed(ROLE_DEFAULT, n),
            n,
        )
    )
    cfgs += [
        Config(f"direct-{c}", f"direct to PostgreSQL, {c} clients", "direct", c, {}, c)
        for c in args.direct_list
    ]
    return cfgs


def http_threads(args: argparse.Namespace) -> int:
    """Threads per demo process so that the instance holds every client at once."""
    return math.ceil(int(args.clients) / int(args.http_workers))


def app_node(w: str, args: argparse.Namespace) -> AppNode | None:
    """The app node the plan sizes for: the demo instance for HTTP; None (pgbench's clients) otherwise."""
    if w != "http":
        return None
    return AppNode("demo", ServerKind.WSGI_GTHREAD, workers=args.http_workers, threads=http_threads(args))


def calibrate(
    lab: BenchLab,
    args: argparse.Namespace,
    db: DatabaseCapacity,
    settings: dict[str, int],
    load: Load,
    w: str,
) -> dict[str, Any]:
    """Run the plan (at most 8 s), measure the hold factor from SHOW STATS, and size again with it."""
    cal = Config(
        "calibration", "plan (calibration run)", "plan", settings["default_pool_size"], settings, args.clients
    )
    r = run_single(lab, cal, load, replace_duration(args, min(args.duration, 8.0)), f"cal-{w}")
    hf = r.get("hold_factor")
    written = inventory_hold_factor(hf) if hf else db.hold_factor
    topology = bench_topology(replace(db, hold_factor=written), args.clients, 1, 1, 1, app_node(w, args))
    return {
        "measured_hold_factor": hf,
        "database_hold_factor": written,
        "settings": sized(topology)[1],
        "run": r,
    }


def measure_all(
    args: argparse.Namespace, db: DatabaseCapacity, log: Callable[[str], None]
) -> tuple[dict[str, Any], dict[str, list[Config]], list[Config]]:
    """Set up, calibrate, then every configuration once per round, interleaved.

    A workload that cannot run here (HTTP without the demo app) is dropped from ``args.workload_list``
    and named, with the reason, in the result's ``skipped``.
    """
    skipped: dict[str, str] = {}
    if "http" in args.workload_list and (why := demo_http.unavailable()):
        log(f"http workload skipped: {why}")
        skipped["http"] = why
        args.workload_list = [w for w in args.workload_list if w != "http"]
    if not args.workload_list:
        raise LabError("no workload left to run")
    plans = {
        w: sized(bench_topology(db, args.clients, 1, 1, 1, app_node(w, args)))[1] for w in args.workload_list
    }
    multi_settings = sized(bench_topology(db, args.clients, 2, 2, 2))[1]
    with BenchLab() as lab:
        log(lab.prepare(SCALE))
        script = lab.dir / "django_like.sql"
        script.write_text(pgbench.DJANGO_LIKE)
        loads: dict[str, Load] = {}
        for w in args.workload_list:
            if w == "http":
                demo = demo_http.DemoHttp(args.http_workers, http_threads(args))
                lab.cleanups.append(demo.close)
                lab.serve_role(demo.user)
                loads[w] = HttpLoad(demo, warmup=min(2.0, args.duration / 2))
            else:
                loads[w] = PgbenchLoad(script if w == "django" else None)
        per: dict[str, list[Config]] = {}
        extra: dict[str, Any] = {"postgresql": lab.settings(), "calibration": {}, "skipped": skipped}
        for w in args.workload_list:
            log(f"calibration run ({w}) at the plan's pool {plans[w]['default_pool_size']}")
            extra["calibration"][w] = calibrate(lab, args, db, plans[w], loads[w], w)
            per[w] = single_configs(args, db, plans[w], extra["calibration"][w])
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

        def single_job(w: str, c: Config) -> Callable[[int], None]:
            return lambda rnd: c.runs.append(
                {"round": rnd + 1, **run_single(lab, c, loads[w], args, f"{w}-{c.key}-{rnd}")}
            )

        def multi_job(c: Config) -> Callable[[int], None]:
            return lambda rnd: c.runs.append(
                {"round": rnd + 1, **run_multiplied(lab, c.settings, script, args, f"{c.key}-{rnd}")}
            )

        jobs = [(f"{w} {c.label}", single_job(w, c)) for w in args.workload_list for c in per[w]]
        jobs += [(f"multiplied {c.label}", multi_job(c)) for c in multi]
        interleaved(args.rounds, jobs, log)
    return extra, per, multi


def main(argv: list[str] | None = None) -> int:
    """Run the bench and write pool_sizing.json, .md and .png."""
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup on SIGTERM too
    t0 = time.monotonic()

    def log(msg: str) -> None:
        print(f"[{time.monotonic() - t0:6.0f} s] {msg}", flush=True)

    db = lab_database()
    try:
        extra, per, multi = measure_all(args, db, log)
    except LabError as exc:
        print(f"pool_sizing: {exc}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    single_plan, plan_settings = sized(bench_topology(db, args.clients, 1, 1, 1))
    now = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "schema": SCHEMA,
        "meta": {
            "date": now.strftime("%Y-%m-%d"),
            "finished_at": now.isoformat(timespec="seconds"),
            "machine": machine(),
            "elapsed_s": round(elapsed),
            "duration_s": args.duration,
            "rounds": args.rounds,
            "clients": args.clients,
            "sizes": args.size_list,
            "direct": args.direct_list,
            "scale": SCALE,
            "postgresql": extra["postgresql"],
            "pgbench_threads": 2,
            "skipped": extra["skipped"],
            "command": "python bench/pool_sizing.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        },
        "plan": {
            "single": {
                "topology": "1 process x 1 database x 1 user, demand = clients",
                "settings": plan_settings,
                "active_target": single_plan.budget.active_target,
                "hold_factor": db.hold_factor,
            },
            "calibration": extra["calibration"],
        },
        "single": {w: workload_report(per[w], 2 * db.cores + db.spindles) for w in args.workload_list},
    }
    if "http" in args.workload_list:
        node = app_node("http", args)
        assert node is not None
        http_plan, http_settings = sized(bench_topology(db, args.clients, 1, 1, 1, node))
        doc["meta"]["http"] = {
            "endpoint": demo_http.ENDPOINT,
            "instance": f"demo app node {demo_http.NODE}: gunicorn gthread, {node.workers} workers x "
            f"{node.threads} threads, CONN_MAX_AGE 0 (a connection per request), cache in process memory",
            "load": "wrk, one keep-alive connection per client, 2 threads",
            "warmup_s": min(2.0, args.duration / 2),
        }
        doc["plan"]["http"] = {
            "topology": f"1 process x 1 database x 1 user, demand = {node.workers} x {node.threads} threads",
            "settings": http_settings,
            "active_target": http_plan.budget.active_target,
            "hold_factor": db.hold_factor,
        }
    if multi:
        multi_plan, multi_settings = sized(bench_topology(db, args.clients, 2, 2, 2))
        doc["multiplied"] = multiplied_report(multi, multi_settings, multi_plan, doc)
    write_reports(doc, args, out, elapsed)
    return 0


def write_reports(doc: dict[str, Any], args: argparse.Namespace, out: Path, elapsed: float) -> None:
    """pool_sizing.json, .md (printed too) and .png under ``out``."""
    (out / "pool_sizing.json").write_text(json.dumps(doc, indent=2, default=str) + "\n")
    lines = [
        f"# Pool sizing ({doc['meta']['date']}, {doc['meta']['machine']})",
        "",
        f"`{doc['meta']['command'].strip()}`: {args.clients} clients, {args.duration:g} s per run, "
        f"{args.rounds} round(s) interleaved, medians; took {elapsed / 60:.1f} min.",
        "",
    ]
    for w, why in doc["meta"]["skipped"].items():
        lines += [f"Workload {w} skipped: {why}.", ""]
    for w in args.workload_list:
        lines += table_lines(w, doc["single"][w])
        if w == "http":
            h = doc["meta"]["http"]
            lines.append(f"HTTP: GET {h['endpoint']} on a {h['instance']}; {h['load']}.")
        lines.append("")
    if "multiplied" in doc:
        lines += multiplied_lines(doc["multiplied"])
    (out / "pool_sizing.md").write_text("\n".join(lines) + "\n")
    chart(doc, out / "pool_sizing.png")
    print("\n".join(lines))
    print(f"\nwritten: {out / 'pool_sizing.json'}, .md, .png ({elapsed / 60:.1f} min)")


def multiplied_report(
    cfgs: list[Config], settings: dict[str, int], p: Plan, doc: dict[str, Any]
) -> dict[str, Any]:
    """Medians of the multiplied topology, and its goal against the Django-like sweep's best."""
    ref = doc["single"].get("django") or doc["single"].get("tpcb")  # the same unit: transactions/s
    best = ref["best"]["tps"] if ref else None
    rows = []
    for c in cfgs:
        s = c.summary()
        per_pool = c.settings["default_pool_size"] + c.settings.get("reserve_pool_size", 0)
        rows.append(
            {
                "key": c.key,
                "label": c.label,
                "kind": c.kind,
                "pool": c.pool,
                "settings": c.settings,
                "wanted": per_pool * 8,
                **s,
                "tps_ratio": s["tps"] / best if s["tps"] and best else None,
                "migration_refused": sum(r["migration_refused"] for r in c.runs),
                "migration_probes": sum(len(r["migration_probes"]) for r in c.runs),
                "runs": c.runs,
            }
        )
    plan_row = next(r for r in rows if r["kind"] == "plan")
    why = []
    if plan_row["errors"] or plan_row["login_failures"]:
        why.append(f"{plan_row['errors']} client errors, {plan_row['login_failures']} logins refused")
    if plan_row["migration_refused"]:
        why.append(f"migration refused {plan_row['migration_refused']} time(s)")
    if (plan_row["tps_ratio"] or 0) < TPS_GOAL:
        why.append(f"TPS ratio {fmt(plan_row['tps_ratio'], 2)} < {TPS_GOAL}")
    return {
        "topology": "2 PgBouncer processes (so_reuseport) x 2 databases x 2 users = 8 pools per process "
        "pair, Django-like load, clients spread over the 4 (database, user) pairs",
        "plan_server_connections": p.budget.pgbouncer_server_connections,
        "plan_settings": settings,
        "best_reference": (
            f"{ref['best']['key']} of the single-pool sweep, {fmt(best)} TPS" if ref else "none"
        ),
        "rows": rows,
        "goal": {
            "pass": not why,
            "why": "; ".join(why) or f"zero errors, bypass free, TPS ratio {fmt(plan_row['tps_ratio'], 2)}",
        },
    }


if __name__ == "__main__":
    sys.exit(main())

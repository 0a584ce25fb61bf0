"""Running bench/pool_sizing.py's configurations: the loads, one run, the multiplied run, the rounds.

A run starts its own PgBouncer on the first PgBouncer host (bench/pgbouncer_lab.py), loads it from
this machine (pgbench, or wrk against the bench's demo instance on the first app host: bench/demo_http.py)
and stops it. The rounds are interleaved: every configuration once per round, odd rounds in reverse
order, and with ``--pin both`` the pinned and unpinned halves of a round swap places as well.

Pinning (issue 14, section 3): ``lab.fleet_cpus.pinned(db_cpus="0", other_cpus="1")`` puts the database
host on CPU 0 and every other lab host on CPU 1 (cgroup cpusets of the nspawn hosts) and restores them
on exit; the bench's own clients here (pgbench, wrk: children of this process) go to CPU 1 with
``os.sched_setaffinity``, so the database has a core to itself and everything else shares the other.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import resource
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import demo_http
from pgbouncer_lab import BENCH_HOST, DATABASE, OTHER, OWNER, PG_PORT, BenchLab, LabError

from lab import fleet_usage
from toolkit.adapters import pgbench
from toolkit.domain.calibrate import database_hold_factor, measure

SCALE = 10
DB_CPUS, OTHER_CPUS = "0", "1"
MODES = {"off": ("unpinned",), "on": ("pinned",), "both": ("unpinned", "pinned")}


@dataclass
class Config:
    """One thing measured: a PgBouncer configuration, or PostgreSQL directly."""

    key: str
    label: str
    kind: str  # sweep, plan, advice, baseline, direct
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
            # A pgbench that exited non-zero (it could not connect, say) counts as one error besides its
            # failed transactions: its run measured nothing.
            "errors": sum(
                r["failed"] + r["aborted_clients"] + int(bool(r.get("pgbench_exit"))) for r in self.runs
            ),
            "login_failures": sum(r.get("login_failures", 0) for r in self.runs),
            "cpu": self.cpu(),
        }

    def cpu(self) -> dict[str, dict[str, float]]:
        """Per host (and ``controller``): the median over the rounds of the cores used and the CPU wait."""
        out: dict[str, dict[str, float]] = {}
        hosts = {h for r in self.runs for h in r.get("cpu", {})}
        for h in sorted(hosts):
            for key in ("cores", "cpu_wait"):
                got = (r.get("cpu", {}).get(h, {}).get(key) for r in self.runs)
                values = [v for v in got if v is not None]
                if values:
                    out.setdefault(h, {})[key] = round(statistics.median(values), 3)
        return out


def fixed(pool: int, clients: int) -> dict[str, int]:
    """A fixed pool size with PgBouncer's other defaults (reserve 0, no caps); room for every client."""
    return {"default_pool_size": pool, "max_client_conn": clients + 50}


# --- pinning ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def pin(mode: str) -> Iterator[dict[str, Any]]:
    """In ``pinned`` mode: the lab's hosts on their cpusets and this process (its clients) on the other CPU.

    Yields what was pinned (the fleet's cpusets as ``lab.fleet_cpus.current()`` reads them).
    """
    if mode != "pinned":
        yield {}
        return
    if (os.cpu_count() or 1) < 2:
        raise LabError("--pin needs 2 CPUs: the database on one, everything else on the other")
    try:
        fleet_cpus = importlib.import_module("lab.fleet_cpus")
    except ImportError as exc:
        raise LabError(f"--pin needs lab/fleet_cpus.py ({exc}); run with --pin off") from None
    before = os.sched_getaffinity(0)
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fleet_cpus.pinned(db_cpus=DB_CPUS, other_cpus=OTHER_CPUS))
        except fleet_cpus.CpusError as exc:
            raise LabError(f"pinning the lab's hosts: {exc}") from None
        os.sched_setaffinity(0, {int(OTHER_CPUS)})
        try:
            current = getattr(fleet_cpus, "current", None)
            yield {"hosts": current() if current else None, "controller_clients": OTHER_CPUS}
        finally:
            os.sched_setaffinity(0, before)


# --- loads ------------------------------------------------------------------------------------------


class PgbenchLoad:
    """pgbench against the bench database (its builtin TPC-B, or a script)."""

    database = DATABASE
    port: int | None = None  # a new port per run

    def __init__(self, script: Path | None) -> None:
        self.script = script

    def reset(self, lab: BenchLab) -> None:
        """Vacuum the small tables and empty the history, as pgbench does before a run without -n."""
        lab.reset_tables()

    @contextlib.contextmanager
    def ready(
        self, lab: BenchLab, port: int, cfg: Config, duration: float, tag: str
    ) -> Iterator[Callable[[], dict[str, Any]]]:
        """Nothing to start: the load is a pgbench process, run by the function yielded."""

        def go() -> dict[str, Any]:
            run = pgbench.Run(
                lab.endpoint(port),
                clients=cfg.clients,
                threads=2,
                duration=duration,
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
    """wrk from here against the bench's demo instance on the app host, its database the run's PgBouncer.

    The instance lives for the whole bench and points at one fixed port (``self.port``) on which every
    HTTP run starts its new PgBouncer; a run warms up for ``warmup`` s (not counted).
    """

    def __init__(self, demo: demo_http.DemoHttp, port: int, warmup: float) -> None:
        self.demo, self.port, self.warmup = demo, port, warmup
        self.database = demo.database

    def reset(self, lab: BenchLab) -> None:
        """Nothing: GET /books/ only reads."""

    @contextlib.contextmanager
    def ready(
        self, lab: BenchLab, port: int, cfg: Config, duration: float, tag: str
    ) -> Iterator[Callable[[], dict[str, Any]]]:
        """Start the instance on first use, warm up through this run's PgBouncer, yield the measured load."""
        if cfg.kind == "direct":
            raise LabError("the HTTP workload has no direct ceiling on the fleet (pg_hba: app via PgBouncer)")
        if not self.demo.started:
            self.demo.start(BENCH_HOST.address, self.port)
        self.demo.load(cfg.clients, self.warmup)
        yield lambda: self.demo.load(cfg.clients, duration)


Load = PgbenchLoad | HttpLoad


CpuReading = tuple[dict[str, fleet_usage.Reading], float]


def _cpu() -> CpuReading:
    """Each lab host's CPU reading and the CPU seconds of this process's finished children (pgbench, wrk)."""
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return fleet_usage.read(), kids.ru_utime + kids.ru_stime


def _cpu_per_second(a: CpuReading, b: CpuReading, elapsed: float) -> dict[str, Any]:
    """Cores each host used during the run and the share of it its tasks waited for a CPU; the clients
    on this machine as ``controller`` (their wait is not measured)."""
    out: dict[str, Any] = fleet_usage.per_second(a[0], b[0], elapsed)
    out["controller"] = {"cores": round((b[1] - a[1]) / elapsed, 3) if elapsed > 0 else None}
    return out


def run_single(lab: BenchLab, cfg: Config, load: Load, duration: float, tag: str) -> dict[str, Any]:
    """One run of one configuration; its PgBouncer lives only for the run."""
    load.reset(lab)
    before = lab.backends()
    loadavg = os.getloadavg()[0]
    bouncers = []
    stats0: tuple[Any, ...] = ()
    stats1: tuple[Any, ...] = ()
    port = PG_PORT
    try:
        if cfg.kind != "direct":
            bouncers = lab.start(cfg.settings, {load.database: load.database}, port=load.port)
            port = bouncers[0].port
        with load.ready(lab, port, cfg, duration, tag) as go:
            if bouncers:
                with bouncers[0].admin() as console:
                    stats0 = console.stats()
            cpu0, started = _cpu(), time.monotonic()
            out = go()
            elapsed, cpu1 = time.monotonic() - started, _cpu()
            if bouncers:
                with bouncers[0].admin() as console:
                    stats1 = console.stats()
    finally:
        lab.stop(bouncers)
    out.update({"backends_before": before, "loadavg_1m_before": loadavg, "port": port})
    out["cpu"] = _cpu_per_second(cpu0, cpu1, elapsed)
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


Job = tuple[str, str, Callable[[int], None]]  # (mode, label, job(round index))


def interleaved(
    rounds: int,
    jobs: list[Job],
    log: Callable[[str], None],
    pins: dict[str, list[Any]] | None = None,
    mode_rounds: dict[str, int] | None = None,
) -> None:
    """Every job once per round, odd rounds in reverse order; each mode's jobs run under :func:`pin`.

    ``jobs`` are grouped by mode (all of one mode, then the other), so reversing a round swaps the
    pinned and unpinned halves too and each round enters a mode once. A mode with fewer rounds in
    ``mode_rounds`` runs in the first rounds only. What each entry pinned goes to ``pins[mode]``.
    """
    for rnd in range(rounds):
        todo = [j for j in jobs if rnd < (mode_rounds or {}).get(j[0], rounds)]
        order = todo if rnd % 2 == 0 else list(reversed(todo))
        i = 0
        while i < len(order):
            mode = order[i][0]
            block = []
            while i < len(order) and order[i][0] == mode:
                block.append(order[i])
                i += 1
            with pin(mode) as pinned:
                if pins is not None and pinned:
                    pins.setdefault(mode, []).append({"round": rnd + 1, **pinned})
                for _, label, job in block:
                    log(f"round {rnd + 1}/{rounds}, {mode}: {label}")
                    job(rnd)

"""bench/pool_sizing.py's report: ratios to the sweep's best with their noise band, tables, JSON.

The ratio of a configuration to the best, and its band, are defined per round: the best is the sweep's
pool size with the highest median throughput over the rounds (one configuration, fixed for the
workload); in every round the configuration's value is divided by that best configuration's value IN
THE SAME ROUND (both ran within minutes of each other, so drift between rounds cancels). The ratio
reported is the median of these per-round ratios, its band their min-max and interquartile range.
The p99 ratio is built the same way. The goal (issue 14): TPS ratio >= 0.95 and p99 ratio <= 1.2,
both medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from sizing_runs import Config

from toolkit.domain import calibrate

TPS_GOAL, P99_GOAL = 0.95, 1.2
WORKLOADS = {
    "tpcb": "pgbench TPC-B (builtin)",
    "django": "Django-like (BEGIN; 4 SELECT by pk; 1 UPDATE; COMMIT)",
    "http": "demo Django app over HTTP (GET /books/, wrk; requests/s)",
}
UNIT = {"http": "requests/s"}  # what the "TPS" columns count; transactions per second otherwise
ORDER = {"sweep": 0, "plan": 1, "advice": 2, "baseline": 3, "direct": 4}


def fmt(value: float | None, digits: int = 0) -> str:
    """A number for a table, '-' when missing."""
    return "-" if value is None else f"{value:.{digits}f}"


def band(values: Sequence[float]) -> dict[str, Any] | None:
    """Median, min, max and interquartile range of per-round ratios (None without any)."""
    if not values:
        return None
    vs = sorted(values)
    q1, q3 = (
        (statistics.quantiles(vs, n=4, method="inclusive")[i] for i in (0, 2))
        if len(vs) > 1
        else (vs[0],) * 2
    )
    return {"median": statistics.median(vs), "min": vs[0], "max": vs[-1], "q1": q1, "q3": q3, "n": len(vs)}


def per_round(c: Config, ref: Config, key: str) -> list[float]:
    """``c``'s value over ``ref``'s in each round both measured."""
    theirs = {r["round"]: r.get(key) for r in ref.runs}
    return [r[key] / theirs[r["round"]] for r in c.runs if r.get(key) and theirs.get(r["round"])]


def fmt_band(b: dict[str, Any] | None) -> str:
    """'0.97 (0.91-1.02)': median and min-max."""
    return "-" if b is None else f"{b['median']:.2f} ({b['min']:.2f}-{b['max']:.2f})"


def workload_report(configs: list[Config], formula: int) -> dict[str, Any]:
    """Medians, per-round ratios to the sweep's best with their band, and the goal for one workload."""
    sweep = [c for c in configs if c.kind == "sweep"]
    best = max(sweep, key=lambda c: c.summary()["tps"] or 0.0)
    plan = next((c for c in configs if c.kind == "plan"), None)
    rows = []
    for c in configs:
        s = c.summary()
        tps_band, p99_band = band(per_round(c, best, "tps")), band(per_round(c, best, "p99_ms"))
        rows.append(
            {
                "key": c.key,
                "label": c.label,
                "kind": c.kind,
                "pool": c.pool,
                "clients": c.clients,
                "settings": c.settings,
                **s,
                "tps_ratio": tps_band["median"] if tps_band else None,
                "tps_band": tps_band,
                "p99_ratio": p99_band["median"] if p99_band else None,
                "p99_band": p99_band,
                "tps_over_plan": band(per_round(c, plan, "tps")) if plan and c.kind == "advice" else None,
                "runs": c.runs,
            }
        )
    if f"sweep-{formula}" in {c.key for c in configs}:
        r = next(r for r in rows if r["key"] == f"sweep-{formula}")
        label = f"2 x cores + spindles = {formula} (the sweep's run at {formula})"
        rows.append({**r, "key": "formula", "kind": "baseline", "runs": [], "label": label})
    rows.sort(key=lambda r: (ORDER[r["kind"]], r["kind"] != "sweep" or r["pool"], r["pool"] or 0))
    goals = {}
    for r in rows:
        if r["kind"] in ("plan", "advice"):
            ok = (r["tps_ratio"] or 0) >= TPS_GOAL and (r["p99_ratio"] or 99) <= P99_GOAL
            goals[r["kind"]] = {
                "pass": ok,
                "pool": r["pool"],
                "tps_ratio": r["tps_ratio"],
                "tps_band": r["tps_band"],
                "p99_ratio": r["p99_ratio"],
                "p99_band": r["p99_band"],
                **({"tps_over_plan": r["tps_over_plan"]} if r["kind"] == "advice" else {}),
            }
    return {"best": {"key": best.key, "pool": best.pool, **best.summary()}, "rows": rows, "goal": goals}


def table_lines(name: str, mode: str, rep: dict[str, Any]) -> list[str]:
    """The markdown table of one workload in one pin mode."""
    unit = UNIT.get(name, "TPS")
    lines = [
        f"### {WORKLOADS[name]}, {mode}",
        "",
        f"| configuration | pool | {unit} (median) | p99 ms (median) | {unit} / best's: median (min-max) | "
        "p99 / best's: median (min-max) | hold factor | errors | logins refused |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rep["rows"]:
        lines.append(
            f"| {r['label']} | {r['pool'] if r['pool'] is not None else '-'} | {fmt(r['tps'])} | "
            f"{fmt(r['p99_ms'], 1)} | {fmt_band(r['tps_band'])} | {fmt_band(r['p99_band'])} | "
            f"{fmt(r['hold_factor'], 2)} | {r['errors']} | {r['login_failures']} |"
        )
    b = rep["best"]
    lines += [
        "",
        f"Best of the sweep: pool {b['pool']}, {fmt(b['tps'])} {unit}, p99 {fmt(b['p99_ms'], 1)} ms.",
        f"Where the CPU went in the best's runs (median cores used, and the share of the run some task of "
        f"the host waited for a CPU): {cpu_text(b.get('cpu') or {})}.",
    ]
    for kind, g in rep["goal"].items():
        lines.append(
            f"Goal ({kind}: {unit} >= {TPS_GOAL:.0%} of best and p99 <= {P99_GOAL} x best's): "
            f"{'PASS' if g['pass'] else 'MISS'} ({unit} {fmt_band(g['tps_band'])}, "
            f"p99 {fmt_band(g['p99_band'])})"
        )
        if "tps_over_plan" in g:
            lines.append(f"Calibrate's advice over the plan, {unit}: {fmt_band(g['tps_over_plan'])}.")
    return lines


def cpu_text(cpu: dict[str, dict[str, float]]) -> str:
    """'db1 0.93 (waited 0.52), pgb1 0.41 (0.25), clients here 0.36': hosts that used 0.05 cores or more."""
    parts = []
    for host, v in sorted(cpu.items(), key=lambda kv: -(kv[1].get("cores") or 0.0)):
        if (v.get("cores") or 0.0) < 0.05:
            continue
        name = "clients here" if host == "controller" else host
        wait = f" (waited {v['cpu_wait']:.2f})" if v.get("cpu_wait") is not None else ""
        parts.append(f"{name} {v['cores']:.2f}{wait}")
    return ", ".join(parts) or "not measured"


def cpu_lines(doc: dict[str, Any]) -> list[str]:
    """Per (workload, mode), the CPU of the best's runs: which host the cores went to."""
    lines = [
        "| workload | CPUs | where the CPU went in the best's runs: cores used (waited: share of the run) |",
        "| --- | --- | --- |",
    ]
    for mode, per in doc["single"].items():
        for w, rep in per.items():
            lines.append(f"| {w} | {mode} | {cpu_text(rep['best'].get('cpu') or {})} |")
    return lines


def summary_lines(doc: dict[str, Any]) -> list[str]:
    """One line per (workload, mode): the plan's and calibrate's advice's ratios to the best, with bands."""
    lines = [
        "| workload | CPUs | best pool | plan pool | plan / best: TPS | plan / best: p99 | goal | "
        "advice pool | advice / best: TPS | advice / plan: TPS |",
        "| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for mode, per in doc["single"].items():
        for w, rep in per.items():
            g, a = rep["goal"].get("plan", {}), rep["goal"].get("advice", {})
            lines.append(
                f"| {w} | {mode} | {rep['best']['pool']} | {g.get('pool', '-')} | "
                f"{fmt_band(g.get('tps_band'))} | {fmt_band(g.get('p99_band'))} | "
                f"{'PASS' if g.get('pass') else 'MISS'} | {a.get('pool', '-')} | "
                f"{fmt_band(a.get('tps_band'))} | {fmt_band(a.get('tps_over_plan'))} |"
            )
    return lines


def multiplied_report(
    cfgs: list[Config], settings: dict[str, int], p: Any, single: dict[str, Any]
) -> dict[str, Any]:
    """Medians of the multiplied topology, and its goal against the Django-like sweep's best."""
    ref = single.get("django") or single.get("tpcb")  # the same unit: transactions/s
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
        "best_reference": f"{ref['best']['key']} of the single-pool sweep, {fmt(best)} TPS"
        if ref
        else "none",
        "rows": rows,
        "goal": {
            "pass": not why,
            "why": "; ".join(why) or f"zero errors, bypass free, TPS ratio {fmt(plan_row['tps_ratio'], 2)}",
        },
    }


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


def markdown(doc: dict[str, Any]) -> list[str]:
    """The whole report as markdown lines."""
    m = doc["meta"]
    rounds = ", ".join(f"{k} {v}" for k, v in m["rounds_per_mode"].items())
    lines = [
        f"# Pool sizing ({m['date']}, {m['machine']})",
        "",
        f"`{m['command'].strip()}`: {m['clients']} clients, {m['duration_s']:g} s per run, rounds "
        f"interleaved (odd rounds reversed): {rounds}; "
        f"took {m['elapsed_s'] / 60:.1f} min; "
        f"load average (1, 5, 15 min) {m['load_before']} before, {m['load_after']} after.",
        "",
        "Ratios: per round, the configuration's value over the sweep's best configuration's (the pool with "
        "the highest median) in the same round; the median of those, and (min-max) across rounds.",
        "Pinned: the database host on CPU 0, every other lab host and this machine's clients on CPU 1; "
        "the plan then sizes for the database as 1 core of its own (database_cores 1). Unpinned, every host "
        f"shares both cores and the plan sizes for database_cpu_share {m['unpinned_cpu_share']:g}, "
        "as the inventory of a database sharing its cores with its clients says.",
        f"Calibrate's advice: the knee of a sweep per workload before the rounds ({m['advice_rule']}; "
        f"{m['cal_rounds']} round(s) of {m['cal_duration_s']:g} s per size).",
        "",
        "## Summary",
        "",
        *summary_lines(doc),
        "",
        *cpu_lines(doc),
        "",
    ]
    for w, why in m["skipped"].items():
        lines += [f"Workload {w} skipped: {why}.", ""]
    for mode, per in doc["single"].items():
        for w, rep in per.items():
            lines += table_lines(w, mode, rep)
            cal = doc["advice"][mode][w]
            sizes = calibrate.summarize(SimpleNamespace(**p) for p in cal["points"])
            pts = ", ".join(
                f"{s.pool_size}: {fmt(s.tps)}"
                + (f" ({fmt(s.tps_min)}-{fmt(s.tps_max)})" if s.rounds > 1 else "")
                + f" / {fmt(s.p99_ms, 0)} ms"
                for s in sizes
            )
            rounds = cal["rounds"]
            lines.append(
                f"Calibration sweep ({cal['duration_s']:g} s per size, {rounds} round(s), "
                f"knee {cal['pool_size']}; pool: TPS{' median (min-max)' if rounds > 1 else ''} / p99): "
                f"{pts}."
            )
            if w == "http":
                h = m["http"]
                lines.append(f"HTTP: GET {h['endpoint']} on {h['instance']}; {h['load']}.")
            lines.append("")
    if "multiplied" in doc:
        lines += multiplied_lines(doc["multiplied"])
    return lines

"""Doctor as a monitor: what one run of ``toolkit doctor --format prometheus --output FILE`` costs.

Against the lab's fleet (inventory/lab: pgb1, pgb2's two processes, PostgreSQL, both Redis hosts), from
this machine, as the monitor timer runs it (docs/monitoring.md), in two variants, interleaved:

- ``monitor``: ``--no-django-nodes``, what a monitor host without SSH to the app nodes runs;
- ``full``: the app nodes' Django settings read over SSH too (the default).

Per run it measures the wall time and the CPU time of the child (user + sys from
``resource.getrusage(RUSAGE_CHILDREN)``, so ``ansible-inventory`` and ssh, which doctor waits for,
count too). The load on PgBouncer's admin console is taken two ways: one extra run per variant in a
counting wrapper (this module, ``--count-child``) counts the admin sessions doctor opens and the SHOW
commands it sends per process; and PgBouncer's own SHOW STATS row of its admin database (``pgbouncer``:
``total_xact_count``, which grows by one per admin session) is read on every process before and after
the timed runs. The bench's own reads are measured the same way first (two reads back to back) and taken
off.

Usage: ``python bench/doctor_monitor.py [--runs 10] [--out bench/results]``. Results: doctor_monitor.json
(every run) and doctor_monitor.md in --out. Exit 1 if a run did not read every target.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/doctor_monitor.py`: the checkout's toolkit
    sys.path.insert(0, str(ROOT))

from machine import machine  # noqa: E402

from toolkit.adapters import pgbouncer  # noqa: E402

BIN = Path(sys.executable).parent
LAB_SECRETS = ROOT / ".lab"
INVENTORY = ROOT / "inventory" / "lab"
VARIANTS = {"monitor": ["--no-django-nodes"], "full": []}
ADMIN_USER = "pgbouncer_admin"


def doctor_argv(variant: str, output: Path) -> list[str]:
    """doctor's arguments (after ``toolkit``) for one variant."""
    return [
        "doctor",
        "-i",
        str(INVENTORY),
        "--secrets",
        str(LAB_SECRETS),
        "--format",
        "prometheus",
        "--output",
        str(output),
        *VARIANTS[variant],
    ]


def timed_run(variant: str, output: Path) -> dict[str, Any]:
    """One run of the installed ``toolkit``: wall time, the child's CPU time, exit code, unread targets."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [str(BIN / "toolkit"), *doctor_argv(variant, output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1, 2, 3):
        raise RuntimeError(f"doctor exited {proc.returncode}: {proc.stderr.strip()[-300:]}")
    text = output.read_text()
    unread = [
        line
        for line in text.splitlines()
        if line.startswith("toolkit_doctor_target_up{") and line.endswith(" 0.0")
    ]
    return {
        "variant": variant,
        "wall_s": round(wall, 4),
        "cpu_user_s": round(after.ru_utime - before.ru_utime, 4),
        "cpu_sys_s": round(after.ru_stime - before.ru_stime, 4),
        "code": proc.returncode,
        "series": sum(1 for line in text.splitlines() if line and not line.startswith("#")),
        "unread": unread,
    }


def count_child(argv: list[str], out: str) -> None:
    """In this process: run doctor with the admin console's sessions and commands counted per target.

    Counted where every admin command passes whatever the adapter's methods: the sessions where the
    console connects, the commands at psycopg's ClientCursor (which only the admin console uses).
    """
    import psycopg  # noqa: PLC0415

    counts: dict[str, dict[str, int]] = {}
    sessions: dict[int, str] = {}  # id of an admin connection -> the process it was opened for
    connect, execute = pgbouncer.AdminConsole._connect, psycopg.ClientCursor.execute

    def bump(where: str, key: str) -> None:
        mine = counts.setdefault(where, {"sessions": 0, "show": 0, "other": 0})
        mine[key] += 1

    def counted_connect(self: pgbouncer.AdminConsole) -> Any:
        where = f"{self.target.name or self.target.host} process {self.target.process or 1}"
        bump(where, "sessions")
        conn = connect(self)
        sessions[id(conn)] = where
        return conn

    def counted_execute(self: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
        where = sessions.get(id(self.connection))
        if where is not None:
            bump(where, "show" if str(query).lstrip().upper().startswith("SHOW") else "other")
        return execute(self, query, *args, **kwargs)

    pgbouncer.AdminConsole._connect = counted_connect  # type: ignore[method-assign]
    psycopg.ClientCursor.execute = counted_execute  # type: ignore[method-assign]
    from toolkit.cli.app import main  # noqa: PLC0415

    try:
        main(argv)
    except SystemExit:
        pass
    finally:
        Path(out).write_text(json.dumps(counts, sort_keys=True) + "\n")


def counted_run(variant: str, workdir: Path) -> dict[str, dict[str, int]]:
    """One run in the counting wrapper; admin sessions and commands per PgBouncer process."""
    out = workdir / f"counts-{variant}.json"
    argv = doctor_argv(variant, workdir / f"counted-{variant}.prom")
    subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, __file__, "--count-child", str(out), "--", *argv],
        cwd=ROOT,
        capture_output=True,
        timeout=120,
        check=False,
    )
    counts: dict[str, dict[str, int]] = json.loads(out.read_text())
    return counts


def processes() -> list[tuple[str, str, int]]:
    """(host, address, process) of every PgBouncer process of the lab, 0 where a host runs one."""
    from toolkit.cli.context import load_context  # noqa: PLC0415

    ctx = load_context(str(INVENTORY), str(LAB_SECRETS))
    out = []
    for host in ctx.topology.pgbouncers:
        endpoint = next(e for e in ctx.of_kind("pgbouncer") if e.name == host.name)
        numbers = range(1, host.processes + 1) if host.processes > 1 else (0,)
        out += [(host.name, endpoint.address, n) for n in numbers]
    return out


def admin_sessions() -> dict[str, int]:
    """SHOW STATS of each process: the admin database's total_xact_count (one per admin session)."""
    password = (LAB_SECRETS / "pgbouncer_admin_password").read_text().strip()
    out = {}
    for host, address, number in processes():
        target = pgbouncer.AdminTarget(address, 6432, ADMIN_USER, password, host, number)
        with pgbouncer.AdminConsole(target, 5.0) as console:
            row = next(r for r in console.stats() if r.database == "pgbouncer")
        out[f"{host} process {number or 1}"] = row.total_xact_count
    return out


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def measure(runs: int, workdir: Path) -> dict[str, Any]:
    """The bench's own read cost, the timed runs (interleaved), the counted runs."""
    first = admin_sessions()
    second = admin_sessions()
    own = _delta(second, first)  # what one read of ours adds on each process
    for variant in VARIANTS:  # warm the file cache and the bytecode, not counted
        timed_run(variant, workdir / "warmup.prom")
    before = admin_sessions()
    samples = []
    for r in range(runs):
        for variant in VARIANTS if r % 2 == 0 else reversed(list(VARIANTS)):
            samples.append(timed_run(variant, workdir / f"{variant}.prom"))
    after = admin_sessions()
    pgbouncer_side = {k: (v - own.get(k, 0)) / (2 * runs + 0.0) for k, v in _delta(after, before).items()}
    counted = {variant: counted_run(variant, workdir) for variant in VARIANTS}
    return {"samples": samples, "own_read": own, "admin_sessions_per_run": pgbouncer_side, "counted": counted}


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Medians per variant and the admin console's load per run."""
    rows = []
    for variant in VARIANTS:
        mine = [s for s in doc["samples"] if s["variant"] == variant]
        cpu = [s["cpu_user_s"] + s["cpu_sys_s"] for s in mine]
        counted = doc["counted"][variant]
        rows.append(
            {
                "variant": variant,
                "runs": len(mine),
                "median_wall_s": round(statistics.median(s["wall_s"] for s in mine), 3),
                "median_cpu_s": round(statistics.median(cpu), 3),
                "median_cpu_user_s": round(statistics.median(s["cpu_user_s"] for s in mine), 3),
                "median_cpu_sys_s": round(statistics.median(s["cpu_sys_s"] for s in mine), 3),
                "series": mine[0]["series"],
                "all_read": all(not s["unread"] for s in mine),
                "admin_sessions": sum(c["sessions"] for c in counted.values()),
                "show_commands": sum(c["show"] for c in counted.values()),
                "other_commands": sum(c["other"] for c in counted.values()),
            }
        )
    return {
        "rows": rows,
        "per_process": doc["counted"],
        "admin_sessions_per_run": doc["admin_sessions_per_run"],
    }


def report(summary: dict[str, Any]) -> list[str]:
    """The lines printed."""
    lines = [
        "toolkit doctor --format prometheus --output FILE against inventory/lab, medians",
        f"{'variant':<8} {'runs':>4} {'wall s':>7} {'CPU s':>6} {'user s':>7} {'sys s':>6} {'series':>6}"
        f" {'admin sessions':>14} {'SHOW':>5} {'all read':>8}",
    ]
    for r in summary["rows"]:
        lines.append(
            f"{r['variant']:<8} {r['runs']:>4} {r['median_wall_s']:7.2f} {r['median_cpu_s']:6.2f}"
            f" {r['median_cpu_user_s']:7.2f} {r['median_cpu_sys_s']:6.2f} {r['series']:>6}"
            f" {r['admin_sessions']:>14} {r['show_commands']:>5} {'yes' if r['all_read'] else 'NO':>8}"
        )
    lines.append("per PgBouncer process, one counted run (sessions / SHOW commands):")
    for variant, per in summary["per_process"].items():
        text = ", ".join(f"{k}: {v['sessions']} / {v['show']}" for k, v in sorted(per.items()))
        lines.append(f"  {variant}: {text}")
    seen = ", ".join(f"{k}: {v:.1f}" for k, v in sorted(summary["admin_sessions_per_run"].items()))
    lines.append(f"admin sessions per run as PgBouncer's SHOW STATS counts them: {seen}")
    return lines


def main() -> int:
    """Parse, measure, print, write the results; exit 1 if a run did not read every target."""
    if len(sys.argv) > 2 and sys.argv[1] == "--count-child":
        count_child(sys.argv[4:], sys.argv[2])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs of each variant")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for the results")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if not (LAB_SECRETS / "pgbouncer_admin_password").is_file():
        raise SystemExit(
            f"doctor_monitor: {LAB_SECRETS} has no lab secrets: deploy the lab first with 'make lab'"
        )
    with tempfile.TemporaryDirectory(prefix="doctor-monitor-") as tmp:
        doc = measure(args.runs, Path(tmp))
    summary = summarise(doc)
    print("\n".join(report(summary)))
    now = dt.datetime.now(dt.UTC)
    meta = {
        "date": now.strftime("%Y-%m-%d"),
        "finished_at": now.isoformat(timespec="seconds"),
        "machine": machine(),
        "runs": args.runs,
        "command": "python bench/doctor_monitor.py " + " ".join(sys.argv[1:]),
    }
    result = {
        "schema": {"name": "bench.doctor_monitor", "version": 1},
        "meta": meta,
        "summary": summary,
        **doc,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "doctor_monitor.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# Doctor as a monitor ({meta['date']}, {meta['machine']})",
        "",
        f"`{meta['command'].strip()}`",
        "",
    ]
    md += ["```", *report(summary), "```", ""]
    (out / "doctor_monitor.md").write_text("\n".join(md))
    print(f"written: {out / 'doctor_monitor.json'}, .md")
    return 0 if all(r["all_read"] for r in summary["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())

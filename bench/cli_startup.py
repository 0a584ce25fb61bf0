"""Start-up time of the ``toolkit`` command against the cost of importing typer alone.

Runs, interleaved so that drift on the machine hits every command alike, ``toolkit --help``,
``toolkit plan -i inventory/lab --format json`` and ``python -c "import typer"`` for N rounds, then prints
each one's median wall time and its ratio to the typer baseline. The goal (issue 6) is a ratio of at
most 1.3: the drivers (psycopg, redis, ansible) and rich are imported only by the commands that use them.

``toolkit plan`` reads the inventory through ``ansible-inventory --list`` (a subprocess: the public
interface, which also decrypts nothing and caches nothing). That subprocess is timed as its own row, and
``plan`` without it is shown as the difference of the two medians, so the part the toolkit controls is
visible beside the part Ansible's own start-up costs.

Usage: ``python bench/cli_startup.py [--rounds 15] [--inventory inventory/lab] [--out bench/results]``
(``make bench``). Results: cli_startup.json (every sample) and cli_startup.md in --out.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from machine import machine

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
GOAL = 1.3


def commands(inventory: str) -> dict[str, list[str]]:
    """The timed commands, by label; the first is the baseline."""
    toolkit = str(BIN / "toolkit")
    return {
        'python -c "import typer"': [sys.executable, "-c", "import typer"],
        "toolkit --help": [toolkit, "--help"],
        f"toolkit plan -i {inventory} --format json": [toolkit, "plan", "-i", inventory, "--format", "json"],
        f"ansible-inventory -i {inventory} --list": [str(ansible_inventory()), "-i", inventory, "--list"],
    }


def ansible_inventory() -> Path:
    """The ansible-inventory the toolkit runs: the one beside this Python, as the inventory adapter does."""
    return BIN / "ansible-inventory"


def time_once(argv: list[str]) -> float:
    """Wall time of one run in seconds; a failing command stops the benchmark."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)  # noqa: S603 - our own fixed commands
    return time.perf_counter() - start


def write_results(out: Path, doc: dict[str, Any]) -> None:
    """cli_startup.json (medians, ratios, every sample) and cli_startup.md (the table and the goals)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "cli_startup.json").write_text(json.dumps(doc, indent=2) + "\n")
    meta = doc["meta"]
    lines = [
        f"# CLI start-up ({meta['date']}, {meta['machine']})",
        "",
        f"`{meta['command']}`: {meta['rounds']} rounds, interleaved, after one untimed warm-up run of each.",
        "",
        "| command | median ms | min ms | ratio to typer |",
        "| --- | ---: | ---: | ---: |",
    ]
    for r in doc["rows"]:
        low = "-" if r["min_ms"] is None else f"{r['min_ms']:.0f}"
        lines.append(f"| `{r['command']}` | {r['median_ms']:.0f} | {low} | {r['ratio']:.2f} |")
    lines.append("")
    for g in doc["goals"]:
        verdict = "met" if g["met"] else "missed"
        lines.append(f"Goal `{g['command']}`: {g['ratio']:.2f} x typer (at most {GOAL}): {verdict}.")
    if doc.get("note"):
        lines += ["", doc["note"] + "."]
    (out / "cli_startup.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    """Run the rounds and print medians and ratios (a measurement: the goal is reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inventory", default="inventory/lab")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for the results")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    cmds = commands(args.inventory)
    for argv in cmds.values():  # warm the file cache and the bytecode, not timed
        time_once(argv)
    times: dict[str, list[float]] = {label: [] for label in cmds}
    for _ in range(args.rounds):
        for label, argv in cmds.items():
            times[label].append(time_once(argv))
    labels = list(cmds)
    base_label, help_label, plan_label, inv_label = labels
    med = {label: statistics.median(samples) for label, samples in times.items()}
    base = med[base_label]
    rows: list[tuple[str, float, float | None]] = [(label, med[label], min(times[label])) for label in labels]
    rows.append(
        ("toolkit plan without ansible-inventory (difference)", med[plan_label] - med[inv_label], None)
    )
    width = max(len(r[0]) for r in rows)
    print(f"{'command':<{width}}  median ms  min ms  ratio to typer   ({args.rounds} rounds, interleaved)")
    for label, value, fastest in rows:
        low = f"{fastest * 1000:6.0f}" if fastest is not None else f"{'-':>6}"
        print(f"{label:<{width}}  {value * 1000:9.0f}  {low}  {value / base:14.2f}")
    goals = []
    for label in (help_label, plan_label):
        ratio = med[label] / base
        goals.append({"command": label, "ratio": ratio, "limit": GOAL, "met": ratio <= GOAL})
        print(f"goal {label}: {ratio:.2f} x typer (at most {GOAL}): {'met' if ratio <= GOAL else 'missed'}")
    note = ""
    if med[inv_label] > GOAL * base:
        note = (
            f"ansible-inventory alone takes {med[inv_label] / base:.2f} x typer's import: no toolkit command "
            "that reads an inventory through it can be within the goal"
        )
        print(note)
    now = dt.datetime.now(dt.UTC)
    doc = {
        "schema": {"name": "bench.cli_startup", "version": 1},
        "meta": {
            "date": now.strftime("%Y-%m-%d"),
            "finished_at": now.isoformat(timespec="seconds"),
            "machine": machine(),
            "rounds": args.rounds,
            "command": "python bench/cli_startup.py " + " ".join(sys.argv[1:]),
        },
        "rows": [
            {
                "command": label,
                "median_ms": round(value * 1000, 1),
                "min_ms": None if fastest is None else round(fastest * 1000, 1),
                "ratio": round(value / base, 3),
            }
            for label, value, fastest in rows
        ],
        "goals": goals,
        "note": note,
        "samples_ms": {label: [round(t * 1000, 1) for t in samples] for label, samples in times.items()},
    }
    write_results(Path(args.out), doc)
    print(f"written: {Path(args.out) / 'cli_startup.json'}, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

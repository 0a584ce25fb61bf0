"""Start-up time of the ``toolkit`` command against the cost of importing typer alone.

Runs, interleaved so that drift on the machine hits every command alike, ``toolkit --help``,
``toolkit plan -i inventory/lab --format json`` and ``python -c "import typer"`` for N rounds, then prints
each one's median wall time and its ratio to the typer baseline. The goal (issue 6) is a ratio of at
most 1.3: the drivers (psycopg, redis, ansible) are imported only by the commands that use them.

Usage: ``python bench/cli_startup.py [--rounds 15] [--inventory inventory/lab]`` (``make bench``).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

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
    }


def time_once(argv: list[str]) -> float:
    """Wall time of one run in seconds; a failing command stops the benchmark."""
    start = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True)  # noqa: S603 - our own fixed commands
    return time.perf_counter() - start


def main() -> int:
    """Run the rounds and print medians and ratios (a measurement: the goal is reported, not enforced)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--inventory", default="inventory/lab")
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
    base_label = next(iter(cmds))
    base = statistics.median(times[base_label])
    width = max(map(len, cmds))
    print(f"{'command':<{width}}  median ms  min ms  ratio to typer   ({args.rounds} rounds, interleaved)")
    over = False
    for label, samples in times.items():
        med = statistics.median(samples)
        ratio = med / base
        over |= label != base_label and ratio > GOAL
        print(f"{label:<{width}}  {med * 1000:9.0f}  {min(samples) * 1000:6.0f}  {ratio:14.2f}")
    print(f"goal: every toolkit command at most {GOAL} x the typer baseline: {'missed' if over else 'met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

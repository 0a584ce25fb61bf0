"""The time of a no-op converge of the lab (``playbooks/lab.yml``, nothing to change): old roles against new.

Two checkouts deploy the same lab: ``--old`` (a git worktree at that commit, made in a temporary
directory) and ``--new`` (this checkout's working tree, or a worktree of ``--new REV``). After one
untimed deploy of each, which also brings the lab to the state both converge to, they run interleaved
for N rounds; each round is a full ``ansible-playbook playbooks/lab.yml`` (forks 10, as ``make
lab-deploy``) held under the lab lock (/tmp/toolkit-lab.lock), one deploy at a time. Printed: each
side's median time (the playbook's own, from a timing callback written to a temporary directory, so
not the wait for the lock; ansible-core has no per-task timer of its own), the ratio new/old, the
``changed`` count of each run (a no-op converge changes nothing, so a run that changed something is
flagged), and the slowest tasks of the new roles.

Usage: ``python bench/converge.py --old REV [--new REV] [--rounds 3] [--top 15] [--out bench/results]``.
Results: converge.json (every sample, per-task times) and converge.md in --out. The lab must be up
(``make lab``); the worktrees reuse this checkout's ``.lab`` (SSH config and secrets).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from machine import machine

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCK = "/tmp/toolkit-lab.lock"  # noqa: S108 - the lab lock every lab user takes (docs/lab.md)

TIMER = '''
"""Per-task wall time (every host of a task together), written as JSON to $CONVERGE_TIMES."""
import json, os, time
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "converge_timer"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._times, self._current, self._start = [], None, time.perf_counter()

    def _close(self):
        if self._current is not None:
            name, start = self._current
            self._times.append([name, time.perf_counter() - start])
        self._current = None

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._close()
        self._current = (task.get_name(), time.perf_counter())

    v2_playbook_on_handler_task_start = lambda self, task: self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        self._close()
        with open(os.environ["CONVERGE_TIMES"], "w") as out:
            json.dump({"total": time.perf_counter() - self._start, "tasks": self._times}, out)
'''


def worktree(rev: str, parent: Path) -> Path:
    """A detached worktree of ``rev`` under ``parent``, with this checkout's .lab linked in."""
    path = parent / re.sub(r"[^A-Za-z0-9]+", "_", rev)
    argv = ["git", "worktree", "add", "--detach", str(path), rev]
    subprocess.run(argv, cwd=ROOT, check=True, capture_output=True)  # noqa: S603
    (path / ".lab").symlink_to(ROOT / ".lab")
    galaxy = path / "galaxy.yml"
    if galaxy.exists():  # the roles are a collection: link the checkout in as `make collection-link` does
        meta = dict(re.findall(r"^(namespace|name):\s*(\S+)", galaxy.read_text(), re.MULTILINE))
        link = path / ".collections" / "ansible_collections" / meta["namespace"] / meta["name"]
        link.parent.mkdir(parents=True)
        link.symlink_to("../../..")
    return path


def deploy(checkout: Path, plugins: Path, times: Path) -> tuple[float, int, int]:
    """One no-op deploy under the lab lock: the playbook's seconds (not the wait for the lock), tasks
    changed, hosts failed or unreachable."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(checkout / "ansible.cfg"),
        "ANSIBLE_FORKS": "10",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_CALLBACK_PLUGINS": str(plugins),
        "ANSIBLE_CALLBACKS_ENABLED": "converge_timer",
        "CONVERGE_TIMES": str(times),
        "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
    }
    argv = ["flock", LOCK, str(BIN / "ansible-playbook"), "playbooks/lab.yml"]
    times.unlink(missing_ok=True)
    proc = subprocess.run(argv, cwd=checkout, env=env, capture_output=True, text=True, check=False)  # noqa: S603
    # The playbook's own time, from the timing callback: the wall time of this call includes the wait
    # for the lab lock, which other users of the lab hold for minutes.
    wall = float(json.loads(times.read_text())["total"]) if times.exists() else float("nan")
    recap = re.findall(r"changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", proc.stdout)
    if proc.returncode != 0 or not recap:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        why = f"ansible-playbook exited {proc.returncode}; fix the lab (make lab)"
        sys.exit(f"converge: {checkout}: {why}\n{tail}")
    changed = sum(int(c) for c, _, _ in recap)
    bad = sum(int(u) + int(f) for _, u, f in recap)
    return wall, changed, bad


def main() -> int:
    """Deploy old and new interleaved; print medians, the ratio and the slowest tasks."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="commit of the old roles")
    parser.add_argument("--new", default=None, help="commit of the new roles (default: this working tree)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--no-warmup",
        action="store_true",
        help="skip the untimed deploys (the lab already converged to both)",
    )
    parser.add_argument("--top", type=int, default=15, help="slowest tasks of the new roles to print")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for the results")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="converge-") as tmp:
        temp = Path(tmp)
        (temp / "plugins").mkdir()
        (temp / "plugins" / "converge_timer.py").write_text(TIMER)
        sides = {"old": worktree(args.old, temp)}
        sides["new"] = worktree(args.new, temp) if args.new else ROOT
        try:
            samples, changed, tasks = run_rounds(sides, temp, args.rounds, warmup=not args.no_warmup)
        finally:
            for path in sides.values():
                if path != ROOT:
                    argv = ["git", "worktree", "remove", "--force", str(path)]
                    subprocess.run(argv, cwd=ROOT, check=False)  # noqa: S603
    med = {side: statistics.median(s) for side, s in samples.items()}
    ratio = med["new"] / med["old"]
    print(f"no-op converge, {args.rounds} round(s) interleaved, under {LOCK}")
    for side in ("old", "new"):
        shown = ", ".join(f"{t:.0f}" for t in samples[side])
        print(f"{side}: median {med[side]:.1f} s  (runs: {shown}; changed per run: {changed[side]})")
    print(f"ratio new/old {ratio:.2f}")
    if any(changed["new"] + changed["old"]):
        print("note: a run changed something: not a no-op converge (a first run after other changes?)")
    slowest = slowest_tasks(tasks, args.top)
    print(f"slowest tasks of the new roles (median s over the rounds, top {args.top}):")
    for name, seconds in slowest:
        print(f"  {seconds:6.2f}  {name}")
    now = dt.datetime.now(dt.UTC)
    doc: dict[str, Any] = {
        "schema": {"name": "bench.converge", "version": 1},
        "meta": {
            "date": now.strftime("%Y-%m-%d"),
            "finished_at": now.isoformat(timespec="seconds"),
            "machine": machine(),
            "rounds": args.rounds,
            "old": args.old,
            "new": args.new or "working tree",
            "command": "python bench/converge.py " + " ".join(sys.argv[1:]),
        },
        "median_s": {k: round(v, 2) for k, v in med.items()},
        "ratio": round(ratio, 3),
        "samples_s": {k: [round(t, 2) for t in v] for k, v in samples.items()},
        "changed": changed,
        "slowest_new_tasks": [[n, round(s, 3)] for n, s in slowest],
        "tasks": tasks,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "converge.json").write_text(json.dumps(doc, indent=2) + "\n")
    lines = [
        f"# No-op converge of the lab ({doc['meta']['date']}, {doc['meta']['machine']})",
        "",
        f"`{doc['meta']['command']}`: {args.rounds} round(s), interleaved, after one untimed deploy of each.",
        "",
        "| roles | median s | runs s | changed |",
        "| --- | ---: | --- | --- |",
    ]
    for side in ("old", "new"):
        runs = ", ".join(f"{t:.0f}" for t in samples[side])
        lines.append(f"| {side} ({doc['meta'][side]}) | {med[side]:.1f} | {runs} | {changed[side]} |")
    lines += ["", f"Ratio new/old: {ratio:.2f}."]
    (out / "converge.md").write_text("\n".join(lines) + "\n")
    print(f"written: {out / 'converge.json'}, .md")
    return 0


def run_rounds(
    sides: dict[str, Path], temp: Path, rounds: int, *, warmup: bool
) -> tuple[dict[str, list[float]], dict[str, list[int]], list[list[list[Any]]]]:
    """The warm-up deploy of each side, then ``rounds`` interleaved timed ones."""
    plugins, times = temp / "plugins", temp / "times.json"
    for side, path in sides.items() if warmup else ():
        print(f"warm-up: {side} ({path})", flush=True)
        deploy(path, plugins, times)
    samples: dict[str, list[float]] = {side: [] for side in sides}
    changed: dict[str, list[int]] = {side: [] for side in sides}
    tasks: list[list[list[Any]]] = []
    for n in range(rounds):
        for side, path in sides.items():
            wall, nchanged, bad = deploy(path, plugins, times)
            if bad:
                sys.exit(f"converge: {side}: {bad} host(s) failed or unreachable; fix the lab (make lab)")
            samples[side].append(wall)
            changed[side].append(nchanged)
            if side == "new":
                tasks.append(json.loads(times.read_text())["tasks"])
            print(f"round {n + 1}: {side} {wall:.1f} s, changed={nchanged}", flush=True)
    return samples, changed, tasks


def slowest_tasks(runs: list[list[list[Any]]], top: int) -> list[tuple[str, float]]:
    """Each task's median time over the runs (a task name that repeats is summed within a run)."""
    per: dict[str, list[float]] = {}
    for run in runs:
        summed: dict[str, float] = {}
        for name, seconds in run:
            summed[name] = summed.get(name, 0.0) + float(seconds)
        for name, seconds in summed.items():
            per.setdefault(name, []).append(seconds)
    ranked = sorted(((n, statistics.median(s)) for n, s in per.items()), key=lambda x: -x[1])
    return ranked[:top]


if __name__ == "__main__":
    sys.exit(main())

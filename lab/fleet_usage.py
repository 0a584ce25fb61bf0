"""The CPU each lab host used, from its own cgroup v2 tree (lab-only; readable without root).

lab/fleet_host.py starts every host in a cgroup of its own, toolkit-lab/<host>, on the unified
hierarchy. Its ``cpu.stat`` counts the CPU time of every process the host ever ran there (PostgreSQL's
backends that came and went included), and its ``cpu.pressure`` the time some of them were ready to
run but waited for a CPU. Two readings around a run give, per host, the cores it used and the share
of the run it waited: what the pool-sizing bench records to show which host the CPU went to
(bench/sizing_runs.py).

>>> a = {"db1": Reading(10.0, 1.0)}
>>> b = {"db1": Reading(17.0, 3.5)}
>>> per_second(a, b, 7.0)
{'db1': {'cores': 1.0, 'cpu_wait': 0.357}}
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

UNIFIED = Path("/sys/fs/cgroup/unified/toolkit-lab")


@dataclass(frozen=True)
class Reading:
    """A host's CPU seconds used and seconds some of its tasks waited for a CPU, since it started."""

    used_s: float
    waited_s: float


def _field(path: Path, key: str) -> float | None:
    """A ``key value`` or ``... key=value`` number of a cgroup file, in seconds (the files count µs)."""
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            words = line.split()
            if words and words[0] == key:
                return int(words[1]) / 1e6
            if words and words[0] == "some":  # cpu.pressure: some avg10=.. avg60=.. avg300=.. total=N
                for word in words[1:]:
                    name, _, value = word.partition("=")
                    if name == key:
                        return int(value) / 1e6
    return None


def read(root: Path = UNIFIED) -> dict[str, Reading]:
    """Every running lab host's reading; a host without a cgroup (down) is left out."""
    out: dict[str, Reading] = {}
    if not root.is_dir():
        return out
    for host in sorted(p for p in root.iterdir() if p.is_dir()):
        used = _field(host / "cpu.stat", "usage_usec")
        if used is not None:
            out[host.name] = Reading(used, _field(host / "cpu.pressure", "total") or 0.0)
    return out


def per_second(before: dict[str, Reading], after: dict[str, Reading], elapsed: float) -> dict[str, dict]:
    """Per host present in both readings: cores used over ``elapsed`` and the share of it spent waiting."""
    if elapsed <= 0:
        return {}
    return {
        h: {
            "cores": round((after[h].used_s - before[h].used_s) / elapsed, 3),
            "cpu_wait": round((after[h].waited_s - before[h].waited_s) / elapsed, 3),
        }
        for h in before
        if h in after
    }

"""Calibrate's advice for bench/pool_sizing.py: a short sweep per workload and the knee of it.

What ``toolkit calibrate --sweep`` does on a staging PgBouncer (SET default_pool_size per size, pgbench,
the knee), done here with the bench's own runs so that the HTTP workload gets its sweep too. The knee is
``toolkit.domain.calibrate.knee``, the function calibrate itself uses: the smallest pool within 5% of the
sweep's best throughput whose p99 is at most 1.2 x the best's.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pgbouncer_lab import BenchLab, LabError
from sizing_runs import Config, Load, fixed, pin, run_single

from toolkit.domain import calibrate

KNEE_TOLERANCE, KNEE_P99_FACTOR = 0.05, 1.2


@dataclass(frozen=True)
class Point:
    """One size of the calibration sweep, as ``calibrate.knee`` takes it."""

    pool_size: int
    tps: float
    p99_ms: float


def knee_rule() -> str:
    """Which knee gives the advice, for the report."""
    return f"toolkit.domain.calibrate.knee(tolerance={KNEE_TOLERANCE}, p99_factor={KNEE_P99_FACTOR})"


def advice(points: Sequence[Point]) -> int:
    """The pool calibrate's knee gives for these points."""
    return calibrate.knee(points, tolerance=KNEE_TOLERANCE, p99_factor=KNEE_P99_FACTOR).pool_size


def calibration_sweep(
    lab: BenchLab, args: argparse.Namespace, load: Load, w: str, mode: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """A sweep of ``--sizes`` (in this pin mode), ``--cal-rounds`` times, and the pool its knee advises.

    The rounds run as ``toolkit calibrate --sweep --rounds`` runs them (``calibrate.sweep_schedule``:
    even rounds reversed), and the knee reads each size's median over them.
    """
    points, runs = [], []
    with pin(mode):
        for rnd, s in calibrate.sweep_schedule(args.size_list, args.cal_rounds):
            log(f"calibration sweep ({w}, {mode}): round {rnd}, pool {s}")
            cfg = Config(f"cal-{s}", f"calibration {s}", "sweep", s, fixed(s, args.clients), args.clients)
            r = run_single(lab, cfg, load, args.cal_duration, f"cal-{mode}-{w}-{s}-{rnd}")
            runs.append({"pool": s, "round": rnd, **r})
            if r.get("tps") and r.get("p99_ms"):
                points.append(Point(s, float(r["tps"]), float(r["p99_ms"])))
    if not points:
        why = "; ".join(f"pool {r['pool']}: tps {r.get('tps')}, {r.get('error') or 'no error'}" for r in runs)
        raise LabError(
            f"the calibration sweep of {w} ({mode}) measured nothing ({why[:300]}); "
            "try a longer --cal-duration"
        )
    return {
        "duration_s": args.cal_duration,
        "rounds": args.cal_rounds,
        "points": [{"pool_size": p.pool_size, "tps": p.tps, "p99_ms": p.p99_ms} for p in points],
        "pool_size": advice(points),
        "runs": runs,
    }

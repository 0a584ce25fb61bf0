"""Drill ``pool-exhaustion``: a view that keeps its transaction open while it waits holds the pool.

Three extra instances of the WSGI node (the node scaled out past its plan) call
``/idle-transaction/`` (a query, then a long wait inside the transaction) until every server
connection of the pool is idle in transaction and more clients queue in PgBouncer. The ASGI node's
ordinary list view is measured before, during and after; doctor must name the holders and the node,
and ``terminate-idle-transactions`` must restore throughput.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from toolkit.adapters.errors import TargetError
from toolkit.adapters.http_load import load, request
from toolkit.domain.drills import DrillReport, ratio
from toolkit.drills.lab import Lab, extra_instances, finding_ids, toolkit, wait_for

NAME = "pool-exhaustion"
TITLE = "connections held idle in transaction exhaust the pool"
HOLD_MS = 90_000  # longer than detection and remediation; shorter than the lab's 300 s timeout
EXTRA_PORTS = (8101, 8102, 8103)  # extra instances only: the lab's own node stays usable after
HOLDERS_PER_INSTANCE = 12  # the WSGI node's 3 workers x 4 threads: every thread holds a connection


def _hold(url: str) -> None:
    # A holder whose session was terminated gets an error: that is the remedy working.
    with contextlib.suppress(TargetError):
        request(url, timeout=HOLD_MS / 1000 + 30)


def _detected(lab: Lab, node: str) -> dict[str, Any] | None:
    _, doc = toolkit(["doctor", "-i", lab.inventory, "--format", "json", "--timeout", "5"])
    ids = finding_ids(doc)
    idle = [
        f
        for f in doc.get("findings", [])
        if f["id"] == "postgres.idle_in_transaction" and f.get("evidence", {}).get("app_node") == node
    ]
    if idle and "pgbouncer.clients_waiting" in ids:
        return {"ids": sorted(set(ids)), "idle_sessions_of_node": len(idle)}
    return None


def run(lab: Lab, seconds: float) -> DrillReport:
    """Inject, detect, remediate, verify; return the report."""
    report = DrillReport(NAME, TITLE)
    sick, healthy = lab.node("wsgi"), lab.node("asgi")
    probe = f"{healthy.url}/books/"
    before = load(probe, 8, seconds)
    report.measurements["before"] = before.to_dict()
    with extra_instances([(sick.name, port) for port in EXTRA_PORTS]) as urls:
        started = time.monotonic()
        for base in urls:
            for _ in range(HOLDERS_PER_INSTANCE):
                threading.Thread(
                    target=_hold, args=(f"{base}/idle-transaction/?ms={HOLD_MS}",), daemon=True
                ).start()
        took, found = wait_for(lambda: _detected(lab, sick.name), deadline_s=60, interval_s=0.5)
        report.detection = {
            "tool": "toolkit doctor",
            "seconds_from_injection": None if took is None else round(time.monotonic() - started, 1),
            **(found or {}),
        }
        during = load(probe, 8, seconds)
        report.measurements["during"] = during.to_dict()
        code, outcome = toolkit(
            [
                "runbook",
                "run",
                "terminate-idle-transactions",
                "-i",
                lab.inventory,
                "--older-than",
                "5s",
                "--app-node",
                sick.name,
                "--yes",
                "--format",
                "json",
            ]
        )
        report.remediation = {
            "command": "toolkit runbook run terminate-idle-transactions --older-than 5s "
            f"--app-node {sick.name} --yes",
            "exit": code,
            "sessions_ended": len(outcome.get("results", [])),
            "verification": outcome.get("verification"),
        }
        after = load(probe, 8, seconds)
        report.measurements["after"] = after.to_dict()
    report.claim(
        f"doctor reports postgres.idle_in_transaction held by {sick.name} and pgbouncer.clients_waiting",
        took is not None,
        "not within 60 s"
        if took is None
        else f"{report.detection['seconds_from_injection']} s after injection",
    )
    report.claim(
        f"the pool is exhausted: {healthy.name}'s throughput falls below half",
        ratio(during.rps, before.rps) < 0.5,
        f"{during.rps:.0f} req/s during vs {before.rps:.0f} before ({ratio(during.rps, before.rps):.2f}x)",
    )
    report.claim("the runbook acted and verified its effect", code == 0, f"exit {code}")
    report.claim(
        "throughput recovers to at least 80% of before",
        ratio(after.rps, before.rps) >= 0.8,
        f"{after.rps:.0f} req/s after vs {before.rps:.0f} before ({ratio(after.rps, before.rps):.2f}x)",
    )
    return report

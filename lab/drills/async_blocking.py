"""Drill ``async-blocking``: a blocking call in an async view stalls the event loop.

The ASGI node serves ``/async/blocking/`` (``time.sleep`` inside ``async def``) and the fixed
``/async/sleep/`` (``await asyncio.sleep``) at rising concurrency. The blocking view's latency must
grow with concurrency while the fixed one stays flat, and ``toolkit audit async`` must point at the
blocking line in the app's source, as deployed on the node (copied from its host over SSH).
"""

from __future__ import annotations

import json
import time

from lab.drills.harness import DEMO_ROOT, Lab, deployed_source, toolkit
from lab.drills.http_load import load
from lab.drills.report import DrillReport, ratio

NAME = "async-blocking"
TITLE = "a blocking call inside an async view"
WAIT_MS = 100  # long enough that 32 clients of the fixed view stay below what 2 cores can serve
CONCURRENCY = (1, 8, 32)


def run(lab: Lab, seconds: float) -> DrillReport:
    """Measure both views at each concurrency, audit the source; return the report."""
    report = DrillReport(NAME, TITLE)
    node = lab.node("asgi")
    p50: dict[str, list[float]] = {"blocking": [], "fixed": []}
    for clients in CONCURRENCY:
        for label, path in (("blocking", "/async/blocking/"), ("fixed", "/async/sleep/")):
            result = load(f"{node.url}{path}?ms={WAIT_MS}", clients, seconds, timeout_s=30)
            report.measurements[f"{label} c={clients}"] = result.to_dict()
            p50[label].append(result.p50_ms)
    with deployed_source(lab, node) as source:
        started = time.monotonic()
        code, doc = toolkit(["audit", "async", source, "--format", "json"])
        took = time.monotonic() - started
    # Named as on the node: the copy's temporary directory means nothing to a reader.
    doc = json.loads(json.dumps(doc).replace(source, f"{node.name}:{DEMO_ROOT}/app"))
    hits = [f["evidence"] for f in doc.get("findings", []) if f.get("id") == "async.blocking_call"]
    report.detection = {
        "tool": f"toolkit audit async (the source deployed in {DEMO_ROOT}/app on {node.name})",
        "exit": code,
        "seconds": round(took, 2),
        "findings": hits,
    }
    report.remediation = {"change": f"await asyncio.sleep({WAIT_MS / 1000:g}) instead of time.sleep"}
    grow, flat = ratio(p50["blocking"][-1], p50["blocking"][0]), ratio(p50["fixed"][-1], p50["fixed"][0])
    top = CONCURRENCY[-1]
    report.claim(
        f"the blocking view's median latency grows with concurrency (>= 3x from 1 to {top} clients)",
        grow >= 3,
        f"{p50['blocking'][0]:.0f} -> {p50['blocking'][-1]:.0f} ms ({grow:.1f}x)",
    )
    report.claim(
        f"the fixed view stays flat (<= 2x from 1 to {top} clients)",
        0 < flat <= 2,
        f"{p50['fixed'][0]:.0f} -> {p50['fixed'][-1]:.0f} ms ({flat:.1f}x)",
    )
    blocking_hits = [h for h in hits if "sleep" in str(h.get("call", ""))]
    report.claim(
        "audit async points at the time.sleep call in the blocking view, and only there",
        len(blocking_hits) == 1 and len(hits) == 1,
        ", ".join(f"{h.get('file')}:{h.get('line')} {h.get('function')}: {h.get('call')}" for h in hits)
        or "no finding",
    )
    return report

"""Drill ``cache-divergence``: two nodes with a per-process cache answer the same key differently.

Two extra instances, one per demo node, run with ``TOOLKIT_DEMO_CACHE=locmem`` (LocMemCache). A
value written through one is read back through both, many times: the share of reads that see it is
measured. Doctor, reading the settings with the same environment, must report
``cache.local_memory_multi_process``; with the lab's Redis cache (the remedy, the settings the role
renders) every read agrees and doctor reports no cache finding.
"""

from __future__ import annotations

import secrets
import time

from lab.drills.harness import Lab, extra_instances, finding_ids, toolkit
from lab.drills.http_load import request
from lab.drills.report import DrillReport, agreement
from toolkit.adapters.errors import TargetError

NAME = "cache-divergence"
TITLE = "LocMemCache on two nodes: each process keeps its own copy"
LOCMEM = {"TOOLKIT_DEMO_CACHE": "locmem"}
PORTS = (8111, 8112)
READS = 30  # per node: enough to land on every worker process


def _read_all(urls: list[str], key: str) -> list[str | None]:
    reads: list[str | None] = []
    for url in urls:
        for _ in range(READS):
            try:
                value = request(f"{url}/cache/{key}/").get("value")
            except TargetError:
                value = None
            reads.append(None if value is None else str(value))
    return reads


def _write_then_read(urls: list[str]) -> tuple[float, dict[str, float]]:
    key, value = f"drill-{secrets.token_hex(4)}", secrets.token_hex(8)
    request(f"{urls[0]}/cache/{key}/", method="PUT", body=value)
    per_node = {url: agreement(_read_all([url], key), value) for url in urls}
    return agreement(_read_all(urls, key), value), per_node


def _cache_findings(lab: Lab, env: dict[str, str] | None) -> tuple[list[str], float]:
    started = time.monotonic()
    _, doc = toolkit(["doctor", "-i", lab.inventory, "--offline", "--only", "cache", "--format", "json"], env)
    return finding_ids(doc), time.monotonic() - started


def run(lab: Lab, seconds: float) -> DrillReport:  # seconds unused: reads are counted, not timed
    """Inject (LocMem instances), detect, compare with the Redis-backed nodes; return the report."""
    report = DrillReport(NAME, TITLE)
    wsgi, asgi = lab.node("wsgi"), lab.node("asgi")
    with extra_instances([(wsgi.name, PORTS[0]), (asgi.name, PORTS[1])], env=LOCMEM) as urls:
        local, local_per_node = _write_then_read(urls)
    report.measurements["LocMemCache"] = {"agreement": round(local, 3), "per_instance": local_per_node}
    ids, took = _cache_findings(lab, LOCMEM)
    report.detection = {
        "tool": "toolkit doctor --offline --only cache",
        "seconds": round(took, 2),
        "ids": ids,
    }
    shared, shared_per_node = _write_then_read([wsgi.url, asgi.url])
    report.measurements["RedisCache"] = {"agreement": round(shared, 3), "per_instance": shared_per_node}
    fixed_ids, _ = _cache_findings(lab, None)
    report.remediation = {"change": "CACHES on the lab's Redis (the role's default)", "doctor_ids": fixed_ids}
    report.claim(
        "with LocMemCache the nodes disagree: some reads miss the value just written",
        local < 1.0,
        f"{local:.0%} of {2 * READS} reads saw it",
    )
    report.claim(
        "doctor reports cache.local_memory_multi_process",
        "cache.local_memory_multi_process" in ids,
        f"{', '.join(sorted(set(ids))) or 'nothing'} in {took:.1f} s",
    )
    report.claim(
        "with the shared Redis cache every read agrees and doctor reports no cache finding",
        shared == 1.0 and not any(i.startswith("cache.") for i in fixed_ids),
        f"{shared:.0%} of {2 * READS} reads; doctor: {', '.join(fixed_ids) or 'no cache finding'}",
    )
    return report

"""Drill ``cache-divergence``: two nodes with a per-process cache answer the same key differently.

Two extra instances, one on each demo node's host, run with ``TOOLKIT_DEMO_CACHE=locmem``
(LocMemCache). A value written through one is read back through both, many times: the share of reads
that see it is measured. Doctor, reading each node's settings on its host with the same environment
(the nodes' ``django_settings_env``, in a copy of the inventory), must report
``cache.local_memory_multi_process``; with the lab's Redis cache (the remedy, the settings the role
renders) every read agrees and doctor reports no cache finding.
"""

from __future__ import annotations

import contextlib
import secrets
import time

from lab.drills.harness import Lab, extra_instances, finding_ids, inventory_with, toolkit
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


def _cache_findings(lab: Lab, env: dict[str, str]) -> tuple[list[str], list[str], float]:
    """doctor's cache finding ids, the app nodes whose settings it could not read, and its wall time.

    doctor imports each node's settings on its host with the node's ``django_settings_env``: ``env``
    is added to it through a copy of the inventory (none: the lab inventory itself).
    """
    with contextlib.ExitStack() as stack:
        path = stack.enter_context(inventory_with(lab, env)) if env else lab.inventory
        started = time.monotonic()
        _, doc = toolkit(["doctor", "-i", path, "--offline", "--only", "cache", "--format", "json"])
        took = time.monotonic() - started
    unread = [t["name"] for t in doc.get("targets", []) if t.get("kind") == "django" and not t.get("ok")]
    return finding_ids(doc), unread, took


def run(lab: Lab, seconds: float) -> DrillReport:  # seconds unused: reads are counted, not timed
    """Inject (LocMem instances), detect, compare with the Redis-backed nodes; return the report."""
    report = DrillReport(NAME, TITLE)
    wsgi, asgi = lab.node("wsgi"), lab.node("asgi")
    with extra_instances(lab, [(wsgi, PORTS[0]), (asgi, PORTS[1])], env=LOCMEM) as urls:
        local, local_per_node = _write_then_read(urls)
    report.measurements["LocMemCache"] = {"agreement": round(local, 3), "per_instance": local_per_node}
    ids, unread, took = _cache_findings(lab, LOCMEM)
    report.detection = {
        "tool": "toolkit doctor --offline --only cache",
        "seconds": round(took, 2),
        "ids": ids,
    }
    shared, shared_per_node = _write_then_read([wsgi.url, asgi.url])
    report.measurements["RedisCache"] = {"agreement": round(shared, 3), "per_instance": shared_per_node}
    fixed_ids, fixed_unread, _ = _cache_findings(lab, {})
    report.remediation = {"change": "CACHES on the lab's Redis (the role's default)", "doctor_ids": fixed_ids}
    report.claim(
        "with LocMemCache the nodes disagree: some reads miss the value just written",
        local < 1.0,
        f"{local:.0%} of {2 * READS} reads saw it",
    )
    report.claim(
        "doctor, reading every node's settings on its host, reports cache.local_memory_multi_process",
        "cache.local_memory_multi_process" in ids and not unread,
        f"{', '.join(sorted(set(ids))) or 'nothing'} in {took:.1f} s"
        + (f"; settings not read on {', '.join(unread)}" if unread else ""),
    )
    report.claim(
        "with the shared Redis cache every read agrees and doctor reports no cache finding",
        shared == 1.0 and not fixed_unread and not any(i.startswith("cache.") for i in fixed_ids),
        f"{shared:.0%} of {2 * READS} reads; doctor: {', '.join(fixed_ids) or 'no cache finding'}"
        + (f"; settings not read on {', '.join(fixed_unread)}" if fixed_unread else ""),
    )
    return report

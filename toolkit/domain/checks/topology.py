"""Topology: do the clients PgBouncer sees match what the inventory declares for each app node?"""

from __future__ import annotations

from collections import Counter

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.snapshot import Snapshot

AREA = "topology"
CATALOG = (
    CheckInfo("topology.client_count_drift", "an app node holds more client connections than it declares"),
)
# Extra clients tolerated before reporting: a deploy briefly runs old and new workers side by side.
TOLERANCE = 1.25


def run(snap: Snapshot) -> list[Finding]:
    """Return topology.* findings: client connections per app address against declared demand."""
    if not snap.pgbouncer:
        return []
    seen: Counter[str] = Counter()
    for state in snap.pgbouncer:
        seen.update(c.addr for c in state.clients if c.database != "pgbouncer" and c.addr)
    declared: dict[str, int] = {}
    names: dict[str, list[str]] = {}
    for node in snap.topology.app_nodes:
        addr = node.address or node.name
        declared[addr] = declared.get(addr, 0) + node.demand
        names.setdefault(addr, []).append(node.name)
    out: list[Finding] = []
    for addr, count in sorted(seen.items()):
        if addr not in declared or count <= declared[addr] * TOLERANCE:
            continue
        nodes = ", ".join(names[addr])
        out.append(
            Finding(
                "topology.client_count_drift",
                Severity.WARNING,
                f"app {nodes}",
                f"{count} client connections from {addr} ({nodes}), {declared[addr]} declared "
                "(workers x threads + Celery + extra): "
                "a connection leak (CONN_MAX_AGE under ASGI) or undeclared workers",
                {"address": addr, "app_nodes": names[addr], "connections": count, "declared": declared[addr]},
                "check django.persistent_connections_under_asgi; "
                "declare the real workers and threads in the inventory",
            )
        )
    return out

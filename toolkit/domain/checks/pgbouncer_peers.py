"""Several PgBouncer processes on one port without peers: a cancel request can be lost.

With so_reuseport the kernel hands each new TCP connection to any process of the host. A cancel
request is a new connection: when it reaches another process than the one running the query, only
``[peers]`` (PgBouncer 1.19+, each process with its own ``peer_id``) forwards it; without peers that
process knows no such key and drops it, and the query runs on (source: PgBouncer's NEWS for 1.19.0
and its docs, "so_reuseport" and "[peers]"). The role configures peers where the version has them
(roles/pgbouncer/vars/main.yml); this module says so where it cannot: in doctor from the live
version and ``peer_id``, and in ``toolkit plan`` from the inventory alone (toolkit/domain/peers.py).
"""

from __future__ import annotations

from toolkit.domain import versions
from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.peers import CANCEL_WITHOUT_PEERS, PEERS, plan_notes
from toolkit.domain.snapshot import Snapshot

__all__ = ["CATALOG", "ID", "PEERS", "REMEDY", "plan_notes", "run"]

ID = CANCEL_WITHOUT_PEERS
CATALOG = (CheckInfo(ID, "several processes share the port without peers: cancel requests can be lost"),)
REMEDY = (
    "install PgBouncer 1.19+ so the role configures peer_id and [peers], or set pgbouncer_processes: 1 "
    "(toolkit plan sizes the pools again)"
)


def run(snap: Snapshot) -> list[Finding]:
    """One finding per multi-process host whose live process has no peers (old version or no peer_id)."""
    processes = {h.name: h.processes for h in snap.topology.pgbouncers}
    out: list[Finding] = []
    seen: set[str] = set()
    for state in snap.pgbouncer:
        count = processes.get(state.host, 1)
        found = versions.parse_version(state.version)
        if count <= 1 or found is None or state.host in seen:
            continue
        peer_id = str(state.config.get("peer_id", "0") or "0").strip()
        if found >= PEERS and peer_id not in ("", "0"):
            continue
        seen.add(state.host)
        shown = ".".join(map(str, found))
        why = f"PgBouncer {shown} has no peers (1.19+)" if found < PEERS else "peer_id is not set"
        out.append(
            Finding(
                ID,
                Severity.WARNING,
                f"pgbouncer@{state.address}",
                f"{state.host} runs {count} processes on one port and {why}: a cancel request that "
                "reaches another process than the query's is lost, and the query runs on",
                {"processes": count, "version": shown, "peer_id": peer_id, "peers": False},
                REMEDY if found < PEERS else "deploy with the pgbouncer role (it sets peer_id and [peers])",
            )
        )
    return out

"""PgBouncer peers from the inventory alone: what ``toolkit plan`` says of processes sharing a port.

With so_reuseport the kernel hands each new TCP connection to any process of the host. A cancel
request is a new connection: when it reaches another process than the one running the query, only
``[peers]`` (PgBouncer 1.19+, each process with its own ``peer_id``) forwards it (source: PgBouncer's
NEWS for 1.19.0 and its docs, "so_reuseport" and "[peers]"). The live check is doctor's
(toolkit/domain/checks/pgbouncer_peers.py); this module is apart from the checks so that ``toolkit
plan`` does not import every check and the snapshot types to print its notes.
"""

from __future__ import annotations

from collections.abc import Mapping

from toolkit.domain import versions
from toolkit.domain.models import Topology

PEERS = (1, 19, 0)  # the first version with peer_id and [peers]
CANCEL_WITHOUT_PEERS = "pgbouncer.cancel_without_peers"  # doctor's finding id


def plan_notes(topology: Topology, minimum_versions: Mapping[str, str]) -> tuple[str, ...]:
    """What ``toolkit plan`` says of each multi-process host whose inventory does not require peers.

    The plan is offline: it knows the version only as the floor the role enforces
    (``pgbouncer_minimum_version``); below 1.19, or unset, it says that cancels can be lost.

    >>> from toolkit.domain.models import DatabaseCapacity, PgBouncerHost
    >>> t = Topology(DatabaseCapacity(100, 2), (PgBouncerHost("pgb2", ("app",), ("app",), processes=2),), ())
    >>> plan_notes(t, {"pgb2": "1.19"})
    ()
    >>> plan_notes(t, {"pgb2": "1.18.0"})[0][:70]
    'pgb2: 2 PgBouncer processes share port 6432; with PgBouncer older than'
    """
    out: list[str] = []
    for host in topology.pgbouncers:
        if host.processes <= 1:
            continue
        floor = versions.parse_version(minimum_versions.get(host.name, "") or "")
        if floor is not None and floor >= PEERS:
            continue
        out.append(
            f"{host.name}: {host.processes} PgBouncer processes share port {host.listen_port}; "
            "with PgBouncer older than 1.19 (no peers) a cancel request that reaches another process "
            f"than the query's is lost; doctor checks the live version ({CANCEL_WITHOUT_PEERS}); "
            "pgbouncer_minimum_version: '1.19' makes the role require peers"
        )
    return tuple(out)

"""Who holds a PostgreSQL session: the PgBouncer process, its client, and the app node, by address.

Behind a PgBouncer tier PostgreSQL sees only the PgBouncer host's address (``client_addr``). The
chain back to the app node is: the backend's pid is a server connection's ``remote_pid`` in SHOW
SERVERS of one PgBouncer process; that server's ``link`` is the ``ptr`` of the client in SHOW
CLIENTS holding it; that client's ``addr`` is the app node's address, which the inventory maps to
the node's name (``ansible_host``). The address decides: an ``application_name`` only picks among
several nodes behind one address (NAT, several nodes on one host), it never names a node by itself.

Pure: the adapters read SHOW CLIENTS/SERVERS of every process of every PgBouncer host and
pg_stat_activity; :func:`attribute` joins them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from toolkit.domain.models import AppNode
from toolkit.domain.snapshot import Backend, ClientConn


@dataclass(frozen=True)
class PoolerLinks:
    """SHOW CLIENTS and SHOW SERVERS of one PgBouncer process, and where that process runs."""

    label: str  # how output names the process (pgbouncer@198.18.0.12:6432 process 2)
    host: str  # the inventory host
    address: str  # the host's address: what PostgreSQL sees as client_addr of its server connections
    clients: tuple[ClientConn, ...]
    servers: tuple[ClientConn, ...]


def nodes_by_address(app_nodes: Sequence[AppNode]) -> dict[str, list[str]]:
    """Inventory app nodes by their address (``ansible_host``; the name when none is given).

    >>> nodes_by_address([AppNode("app1", address="198.18.0.13"), AppNode("app2", address="198.18.0.14")])
    {'198.18.0.13': ['app1'], '198.18.0.14': ['app2']}
    """
    out: dict[str, list[str]] = {}
    for node in app_nodes:
        out.setdefault(node.address or node.name, []).append(node.name)
    return out


def node_of(addr: str, application_name: str, by_address: Mapping[str, Sequence[str]]) -> str | None:
    """The app node a client at ``addr`` is, or None when no node of the inventory has that address.

    >>> by = {"198.18.0.13": ["app1"], "10.0.0.9": ["web1", "web2"]}
    >>> node_of("198.18.0.13", "app2", by)  # the address decides, not what the client calls itself
    'app1'
    >>> node_of("10.0.0.9", "web2", by), node_of("10.0.0.9", "cron", by)
    ('web2', 'web1 or web2')
    >>> node_of("198.18.0.1", "app1", by) is None
    True
    """
    nodes = list(by_address.get(addr, ()))
    if not nodes:
        return None
    if len(nodes) > 1 and application_name in nodes:
        return application_name
    return " or ".join(nodes)


def attribute(
    backends: Sequence[Backend], poolers: Sequence[PoolerLinks], app_nodes: Sequence[AppNode]
) -> dict[int, dict[str, str]]:
    """Backend pid -> who holds it: ``pgbouncer`` (the process), ``pgbouncer_host``, and when a client
    holds the server connection ``client`` (addr:port), ``client_application_name`` and ``app_node``.

    A server row counts only for a backend whose ``client_addr`` is that PgBouncer's host address
    (when both are known): a ``remote_pid`` of a server connection to another PostgreSQL is another
    session.

    >>> c = ClientConn("C", "app", "app", "active", "198.18.0.14", 50000, "0xc", "0xs", 0, "app2")
    >>> s = ClientConn("S", "app", "app", "active", "198.18.0.10", 5432, "0xs", "0xc", 77, "app2")
    >>> pgb = PoolerLinks("pgbouncer@198.18.0.11:6432", "pgb1", "198.18.0.11", (c,), (s,))
    >>> b = Backend(77, "app", "app", "app2", "198.18.0.11", "client backend", "idle in transaction",
    ...             9.0, 9.0, 9.0, "Client", (), "")
    >>> attribute([b], [pgb], [AppNode("app2", address="198.18.0.14")])[77]["app_node"]
    'app2'
    >>> from dataclasses import replace
    >>> attribute([replace(b, client_addr="198.18.0.12")], [pgb], [])  # not pgb1's server connection
    {}
    """
    by_address = nodes_by_address(app_nodes)
    seen = {b.pid: b.client_addr for b in backends}
    out: dict[int, dict[str, str]] = {}
    for pooler in poolers:
        clients = {c.ptr: c for c in pooler.clients if c.ptr}
        for server in pooler.servers:
            if not server.remote_pid or server.remote_pid not in seen:
                continue
            addr = seen[server.remote_pid]
            if addr and pooler.address and addr != pooler.address:
                continue
            entry = {"pgbouncer": pooler.label, "pgbouncer_host": pooler.host}
            client = clients.get(server.link) if server.link else None
            if client is not None:
                entry["client"] = f"{client.addr}:{client.port}"
                if client.application_name:
                    entry["client_application_name"] = client.application_name
                node = node_of(client.addr, client.application_name, by_address)
                if node is not None:
                    entry["app_node"] = node
            out[server.remote_pid] = entry
    return out


def holder_text(entry: Mapping[str, str]) -> str:
    """How a plan names who holds a session.

    >>> holder_text({"pgbouncer_host": "pgb1", "client": "198.18.0.13:41000", "app_node": "app1"})
    'held by app node app1 (198.18.0.13:41000 through pgb1)'
    >>> holder_text({"pgbouncer_host": "pgb2", "client": "198.18.0.1:5000"})
    'held by 198.18.0.1:5000 through pgb2 (no app node of the inventory has that address)'
    >>> holder_text({"pgbouncer_host": "pgb2"})
    'a pooled server connection of pgb2, no client on it'
    >>> holder_text({})
    ''
    """
    via = entry.get("pgbouncer_host") or entry.get("pgbouncer", "")
    client = entry.get("client")
    node = entry.get("app_node")
    if node:
        return f"held by app node {node} ({client} through {via})" if client else f"held by app node {node}"
    if client:
        return f"held by {client} through {via} (no app node of the inventory has that address)"
    if via:
        return f"a pooled server connection of {via}, no client on it"
    return ""

"""Live use against the plan, as plain rows: what doctor's gauges and ``toolkit watch`` both show.

Pure: :func:`metrics` reads a :class:`~toolkit.domain.snapshot.Snapshot` (SHOW POOLS and SHOW CLIENTS
of every PgBouncer process, PostgreSQL's settings and sessions, Redis INFO and CONFIG) and the plan of
the inventory, and returns rows; the CLI renders them (Prometheus text, a rich table). A target that
was not read has no live row; the planned limits come from the inventory and are there regardless.

Process numbers: a host that runs one PgBouncer process is process ``1``; on a host that runs several
on one port, gather names each one ``ADDRESS process N`` and N is the label.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from toolkit.domain.attribution import node_of, nodes_by_address
from toolkit.domain.models import AppNode, RedisProfile, Topology
from toolkit.domain.numbers import as_int
from toolkit.domain.plan import PgBouncerPlan, Plan
from toolkit.domain.snapshot import PgBouncerState, PostgresState, RedisState, Snapshot

UNKNOWN_APP = "unknown"  # waiting clients from an address no app node of the inventory has
ADMIN_DATABASE = "pgbouncer"  # the admin console's pseudo-database: not a pool of the app
NEAR = 0.8  # utilisation from which a pool is shown as near its limit


@dataclass(frozen=True)
class PlannedProcess:
    """The limits the plan sets for one PgBouncer process, and the pools it serves."""

    host: str
    process: str
    max_client_conn: int
    default_pool_size: int
    reserve_pool_size: int
    max_db_connections: int
    databases: tuple[str, ...]
    users: tuple[str, ...]


@dataclass(frozen=True)
class PoolRow:
    """One live pool (SHOW POOLS row) of one process, beside its planned limits."""

    host: str
    process: str
    address: str  # what was read: ``198.18.0.12:6432 process 2``
    database: str
    user: str
    cl_active: int
    cl_waiting: int
    sv_active: int
    sv_idle: int
    sv_used: int
    maxwait_seconds: float
    pool_size_planned: int | None = None  # None: no plan (the topology does not fit)
    reserve_pool_size_planned: int | None = None
    waiting_by_app: tuple[tuple[str, int], ...] = ()  # (app node or "unknown", waiting clients)

    @property
    def utilisation(self) -> float | None:
        """Servers in use (linked to a client) over the planned pool size; above 1 in the reserve.

        >>> PoolRow("pgb1", "1", "a", "app", "app", 0, 0, 15, 0, 0, 0.0, 20).utilisation
        0.75
        >>> PoolRow("pgb1", "1", "a", "app", "app", 0, 0, 15, 0, 0, 0.0).utilisation is None
        True
        """
        if not self.pool_size_planned:
            return None
        return self.sv_active / self.pool_size_planned

    @property
    def saturated(self) -> bool:
        """Clients wait, or every planned server connection is in use."""
        return self.cl_waiting > 0 or (self.utilisation or 0.0) >= 1.0

    @property
    def pressure(self) -> tuple[int, float, float, int]:
        """Sort key, highest first: waiting clients, then utilisation, then the longest wait."""
        return (self.cl_waiting, self.utilisation or 0.0, self.maxwait_seconds, self.cl_active)


@dataclass(frozen=True)
class PostgresRow:
    """PostgreSQL's connection slots: used (client backends, doctor's own included) against usable."""

    host: str
    connections: int
    max_connections: int
    usable: int  # max_connections - superuser_reserved_connections - reserved_connections

    @property
    def utilisation(self) -> float | None:
        """Connections over usable slots."""
        return self.connections / self.usable if self.usable > 0 else None


@dataclass(frozen=True)
class RedisRow:
    """One Redis: clients and memory against their limits, and its two counters."""

    host: str
    role: str  # cache, broker, or "" when the inventory does not say
    connected_clients: int
    maxclients: int | None
    memory_used_bytes: int
    maxmemory_bytes: int | None  # None: unset (0, no limit)
    evicted_keys_total: int
    rejected_connections_total: int

    @property
    def clients_utilisation(self) -> float | None:
        """Connected clients over maxclients."""
        return self.connected_clients / self.maxclients if self.maxclients else None

    @property
    def memory_utilisation(self) -> float | None:
        """Used memory over maxmemory."""
        return self.memory_used_bytes / self.maxmemory_bytes if self.maxmemory_bytes else None


@dataclass(frozen=True)
class Metrics:
    """Everything the gauges show."""

    planned: tuple[PlannedProcess, ...]
    pools: tuple[PoolRow, ...]
    postgres: PostgresRow | None
    redis: tuple[RedisRow, ...]


def process_label(state: PgBouncerState) -> str:
    """The process number of one read, as a label value.

    >>> from toolkit.domain.snapshot import PgBouncerState as S
    >>> process_label(S("pgb2", "198.18.0.12:6432 process 2", "", {}, (), (), (), ()))
    '2'
    >>> process_label(S("pgb1", "198.18.0.11:6432", "", {}, (), (), (), ()))
    '1'
    """
    _, sep, number = state.address.rpartition(" process ")
    return number if sep and number.isdigit() else "1"


def planned_processes(topology: Topology, plan: Plan | None) -> tuple[PlannedProcess, ...]:
    """Every process of every PgBouncer host of the plan, with its limits; none without a plan."""
    if plan is None:
        return ()
    hosts = {h.name: h for h in topology.pgbouncers}
    out: list[PlannedProcess] = []
    for p in plan.pgbouncer:
        host = hosts.get(p.host)
        out += [
            PlannedProcess(
                p.host,
                str(n),
                p.value("max_client_conn"),
                p.value("default_pool_size"),
                p.value("reserve_pool_size"),
                p.value("max_db_connections"),
                host.databases if host else (),
                host.users if host else (),
            )
            for n in range(1, p.processes + 1)
        ]
    return tuple(out)


def waiting_by_app(
    state: PgBouncerState, database: str, user: str, cl_waiting: int, nodes: Sequence[AppNode]
) -> tuple[tuple[str, int], ...]:
    """Waiting clients of one pool by the app node they come from (SHOW CLIENTS, by address).

    Every app node routed to this host has a row (0 when none of its clients wait), so a series does
    not come and go. Clients from an address no node has count as ``unknown``, and so do waiting
    clients SHOW POOLS counted that SHOW CLIENTS (read a moment later) no longer listed as waiting.

    >>> from toolkit.domain.snapshot import ClientConn, PgBouncerState as S
    >>> c = ClientConn("C", "app", "app", "waiting", "198.18.0.13", 4000, "0x1", "", 0, "")
    >>> st = S("pgb1", "a", "", {}, (), (), (c, c), ())
    >>> node = AppNode("app1", address="198.18.0.13", pgbouncer_hosts=("pgb1",))
    >>> waiting_by_app(st, "app", "app", 3, [node, AppNode("app2", pgbouncer_hosts=("pgb1",))])
    (('app1', 2), ('app2', 0), ('unknown', 1))
    """
    routed = [n for n in nodes if not n.pgbouncer_hosts or state.host in n.pgbouncer_hosts]
    counts: dict[str, int] = {n.name: 0 for n in routed}
    by_address = nodes_by_address(nodes)
    for c in state.clients:
        if c.state != "waiting" or c.database != database or c.user != user:
            continue
        node = node_of(c.addr, c.application_name, by_address) or UNKNOWN_APP
        counts[node] = counts.get(node, 0) + 1
    rest = cl_waiting - sum(counts.values())
    if rest > 0:
        counts[UNKNOWN_APP] = counts.get(UNKNOWN_APP, 0) + rest
    return tuple(sorted(counts.items(), key=lambda kv: (kv[0] == UNKNOWN_APP, kv[0])))


def pool_rows(
    app_nodes: Sequence[AppNode], plan: Plan | None, states: Iterable[PgBouncerState]
) -> tuple[PoolRow, ...]:
    """Every live pool of every process read (the admin database left out), with its planned limits
    and its waiting clients by app node (of ``app_nodes``)."""
    plans: Mapping[str, PgBouncerPlan] = {p.host: p for p in plan.pgbouncer} if plan else {}
    out: list[PoolRow] = []
    for state in states:
        mine = plans.get(state.host)
        for p in state.pools:
            if p.database == ADMIN_DATABASE:
                continue
            out.append(
                PoolRow(
                    state.host,
                    process_label(state),
                    state.address,
                    p.database,
                    p.user,
                    p.cl_active,
                    p.cl_waiting,
                    p.sv_active,
                    p.sv_idle,
                    p.sv_used,
                    p.maxwait_seconds,
                    mine.value("default_pool_size") if mine else None,
                    mine.value("reserve_pool_size") if mine else None,
                    waiting_by_app(state, p.database, p.user, p.cl_waiting, app_nodes),
                )
            )
    return tuple(out)


def by_pressure(rows: Iterable[PoolRow]) -> list[PoolRow]:
    """Pools under the most pressure first; ties in host, process, database, user order."""
    ordered = sorted(rows, key=lambda r: (r.host, r.process, r.database, r.user))
    return sorted(ordered, key=lambda r: r.pressure, reverse=True)


def postgres_row(topology: Topology, state: PostgresState | None) -> PostgresRow | None:
    """Slots used and usable, from the live settings; None when PostgreSQL was not read.

    Connections are the client backends of pg_stat_activity plus doctor's own session (which the
    adapter leaves out of its rows but which takes a slot).
    """
    if state is None:
        return None
    settings = state.settings
    max_connections = as_int(settings.get("max_connections"))
    reserved = as_int(settings.get("superuser_reserved_connections")) + (
        as_int(settings.get("reserved_connections"))
    )
    used = sum(1 for b in state.backends if b.backend_type == "client backend") + 1
    return PostgresRow(topology.database.host, used, max_connections, max(0, max_connections - reserved))


def redis_row(topology: Topology, state: RedisState) -> RedisRow:
    """One Redis's clients, memory and counters; a limit of 0 (none) is None."""
    roles: Mapping[str, RedisProfile] = {r.name: r.profile for r in topology.redis}
    info, config = state.info, state.config
    role = roles.get(state.host)
    return RedisRow(
        state.host,
        role.value if role else "",
        as_int(info.get("connected_clients")),
        as_int(config.get("maxclients")) or None,
        as_int(info.get("used_memory")),
        as_int(config.get("maxmemory")) or None,
        as_int(info.get("evicted_keys")),
        as_int(info.get("rejected_connections")),
    )


def metrics(snapshot: Snapshot) -> Metrics:
    """The rows of one snapshot."""
    topo = snapshot.topology
    return Metrics(
        planned=planned_processes(topo, snapshot.plan),
        pools=pool_rows(topo.app_nodes, snapshot.plan, snapshot.pgbouncer),
        postgres=postgres_row(topo, snapshot.postgres),
        redis=tuple(redis_row(topo, r) for r in snapshot.redis),
    )

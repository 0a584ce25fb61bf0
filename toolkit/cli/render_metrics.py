"""doctor's gauges of live use against the plan, as a prometheus_client collector.

The values are :mod:`toolkit.domain.metrics` rows; this module only names them (docs/monitoring.md
has the table). Units are in the names (``_seconds``, ``_bytes``, ``_ratio``); Redis's two counters
since its start are Prometheus counters (``_total``), so ``rate()`` and ``increase()`` handle a
restart of Redis as a counter reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from toolkit.domain.metrics import Metrics

if TYPE_CHECKING:
    from prometheus_client.registry import CollectorRegistry

POOL = ["host", "process", "database", "user"]
PROCESS = ["host", "process"]
DATABASE = ["host", "process", "database"]
REDIS = ["host", "role"]

# (name, help, SHOW POOLS attribute of PoolRow)
POOL_GAUGES = (
    (
        "toolkit_pgbouncer_pool_clients_active",
        "Clients linked to a server connection (cl_active).",
        "cl_active",
    ),
    (
        "toolkit_pgbouncer_pool_clients_waiting",
        "Clients waiting for a server connection (cl_waiting).",
        "cl_waiting",
    ),
    (
        "toolkit_pgbouncer_pool_servers_active",
        "Server connections linked to a client (sv_active).",
        "sv_active",
    ),
    ("toolkit_pgbouncer_pool_servers_idle", "Server connections idle and ready (sv_idle).", "sv_idle"),
    (
        "toolkit_pgbouncer_pool_servers_used",
        "Server connections idle, to be checked before reuse (sv_used).",
        "sv_used",
    ),
    (
        "toolkit_pgbouncer_pool_maxwait_seconds",
        "Longest wait of a waiting client (maxwait).",
        "maxwait_seconds",
    ),
)


class MetricsCollector(Collector):
    """Yields every gauge of one :class:`Metrics`; register it in a registry of its own."""

    def __init__(self, rows: Metrics) -> None:
        self.rows = rows

    def collect(self) -> Iterator[Metric]:
        """The metric families, in the order of docs/monitoring.md."""
        yield from self._pools()
        yield from self._planned()
        yield from self._postgres()
        yield from self._redis()

    def _pools(self) -> Iterator[Metric]:
        pools = self.rows.pools
        for name, text, attr in POOL_GAUGES:
            g = GaugeMetricFamily(name, text, labels=POOL)
            for r in pools:
                g.add_metric([r.host, r.process, r.database, r.user], float(getattr(r, attr)))
            yield g
        util = GaugeMetricFamily(
            "toolkit_pgbouncer_pool_utilisation_ratio",
            "Server connections in use (sv_active) over the planned default_pool_size (above 1: reserve).",
            labels=POOL,
        )
        by_app = GaugeMetricFamily(
            "toolkit_pgbouncer_pool_clients_waiting_by_app",
            "Waiting clients by the app node they come from (by address; 'unknown' where none matches).",
            labels=[*POOL, "app_node"],
        )
        for r in pools:
            labels = [r.host, r.process, r.database, r.user]
            if r.utilisation is not None:
                util.add_metric(labels, r.utilisation)
            for node, n in r.waiting_by_app:
                by_app.add_metric([*labels, node], float(n))
        yield util
        yield by_app

    def _planned(self) -> Iterator[Metric]:
        planned = self.rows.planned
        size = GaugeMetricFamily(
            "toolkit_pgbouncer_pool_size_planned", "default_pool_size in the plan.", labels=POOL
        )
        reserve = GaugeMetricFamily(
            "toolkit_pgbouncer_reserve_pool_size_planned", "reserve_pool_size in the plan.", labels=POOL
        )
        clients = GaugeMetricFamily(
            "toolkit_pgbouncer_max_client_conn_planned", "max_client_conn in the plan.", labels=PROCESS
        )
        per_db = GaugeMetricFamily(
            "toolkit_pgbouncer_max_db_connections_planned", "max_db_connections in the plan.", labels=DATABASE
        )
        for p in planned:
            clients.add_metric([p.host, p.process], float(p.max_client_conn))
            pairs = {(d, u) for d in p.databases for u in p.users}
            # A live pool the topology does not list (another user) still gets its planned size.
            pairs |= {
                (r.database, r.user) for r in self.rows.pools if (r.host, r.process) == (p.host, p.process)
            }
            for database, user in sorted(pairs):
                size.add_metric([p.host, p.process, database, user], float(p.default_pool_size))
                reserve.add_metric([p.host, p.process, database, user], float(p.reserve_pool_size))
            for database in sorted({d for d, _ in pairs}):
                per_db.add_metric([p.host, p.process, database], float(p.max_db_connections))
        yield from (size, reserve, clients, per_db)

    def _postgres(self) -> Iterator[Metric]:
        pg = self.rows.postgres
        used = GaugeMetricFamily(
            "toolkit_postgres_connections", "Client backends, doctor's own session included.", labels=["host"]
        )
        usable = GaugeMetricFamily(
            "toolkit_postgres_usable_connections",
            "max_connections minus superuser_reserved_connections and reserved_connections.",
            labels=["host"],
        )
        ratio = GaugeMetricFamily(
            "toolkit_postgres_connections_utilisation_ratio",
            "Connections over usable slots.",
            labels=["host"],
        )
        if pg is not None:
            used.add_metric([pg.host], float(pg.connections))
            usable.add_metric([pg.host], float(pg.usable))
            if pg.utilisation is not None:
                ratio.add_metric([pg.host], pg.utilisation)
        yield from (used, usable, ratio)

    def _redis(self) -> Iterator[Metric]:
        families = {
            "clients": GaugeMetricFamily(
                "toolkit_redis_connected_clients", "INFO connected_clients.", labels=REDIS
            ),
            "maxclients": GaugeMetricFamily(
                "toolkit_redis_maxclients", "CONFIG GET maxclients.", labels=REDIS
            ),
            "clients_ratio": GaugeMetricFamily(
                "toolkit_redis_clients_utilisation_ratio", "Connected clients over maxclients.", labels=REDIS
            ),
            "memory": GaugeMetricFamily("toolkit_redis_memory_used_bytes", "INFO used_memory.", labels=REDIS),
            "maxmemory": GaugeMetricFamily(
                "toolkit_redis_maxmemory_bytes",
                "CONFIG GET maxmemory (no series when 0: no limit).",
                labels=REDIS,
            ),
            "memory_ratio": GaugeMetricFamily(
                "toolkit_redis_memory_utilisation_ratio", "Used memory over maxmemory.", labels=REDIS
            ),
        }
        evicted = CounterMetricFamily(
            "toolkit_redis_evicted_keys", "INFO evicted_keys: keys evicted since Redis started.", labels=REDIS
        )
        rejected = CounterMetricFamily(
            "toolkit_redis_rejected_connections",
            "INFO rejected_connections: connections refused at maxclients since Redis started.",
            labels=REDIS,
        )
        for r in self.rows.redis:
            labels = [r.host, r.role]
            families["clients"].add_metric(labels, float(r.connected_clients))
            families["memory"].add_metric(labels, float(r.memory_used_bytes))
            optional = (
                ("maxclients", r.maxclients),
                ("clients_ratio", r.clients_utilisation),
                ("maxmemory", r.maxmemory_bytes),
                ("memory_ratio", r.memory_utilisation),
            )
            for key, value in optional:
                if value is not None:
                    families[key].add_metric(labels, float(value))
            evicted.add_metric(labels, float(r.evicted_keys_total))
            rejected.add_metric(labels, float(r.rejected_connections_total))
        yield from families.values()
        yield evicted
        yield rejected


def register(registry: CollectorRegistry, rows: Metrics) -> None:
    """Add the gauges of ``rows`` to ``registry``."""
    registry.register(MetricsCollector(rows))

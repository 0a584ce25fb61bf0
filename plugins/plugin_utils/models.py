# Generated from toolkit/domain/models.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/models.py and run `python scripts/generate_plugin_utils.py`.
"""Frozen value objects describing the topology the pools are sized for.

Built once from the inventory (see :mod:`toolkit.domain.inventory`) and never changed afterwards.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ServerKind(enum.Enum):
    """How a Django app node serves requests; decides how many connections each worker holds."""

    WSGI_SYNC = "wsgi_sync"
    WSGI_GTHREAD = "wsgi_gthread"
    ASGI = "asgi"


class PoolMode(enum.Enum):
    """PgBouncer's pool_mode."""

    SESSION = "session"
    TRANSACTION = "transaction"
    STATEMENT = "statement"


class RedisProfile(enum.Enum):
    """What a Redis instance is for: a cache may evict, a broker must not."""

    CACHE = "cache"
    BROKER = "broker"


@dataclass(frozen=True)
class DatabaseCapacity:
    """What the PostgreSQL server can give: connection slots and the cores to run them."""

    max_connections: int
    cores: int
    superuser_reserved_connections: int = 3
    reserved_connections: int = 0
    bypass_connections: tuple[tuple[str, int], ...] = (
        ("admin", 2),
        ("monitoring", 2),
        ("migrations", 1),
        ("cron", 1),
    )
    spindles: int = 0
    hold_factor: float = 5.0
    # The share of `cores` PostgreSQL gets: below 1 when its host's cores also run the pooler, the app
    # or their clients (measured on the lab: db1 used 0.87-0.94 of 2 shared cores under pgbench).
    cpu_share: float = 1.0
    host: str = "127.0.0.1"
    port: int = 5432

    @property
    def bypass_total(self) -> int:
        """Connections that reach PostgreSQL without going through PgBouncer."""
        return sum(n for _, n in self.bypass_connections)


@dataclass(frozen=True)
class SizingOverrides:
    """Values an inventory may pin instead of the computed ones; each is validated by the sizing."""

    default_pool_size: int | None = None
    min_pool_size: int | None = None
    reserve_pool_size: int | None = None
    max_client_conn: int | None = None


@dataclass(frozen=True)
class PgBouncerHost:
    """One host running PgBouncer (possibly several processes sharing a port via so_reuseport)."""

    name: str
    databases: tuple[str, ...]
    users: tuple[str, ...]
    processes: int = 1
    pool_mode: PoolMode = PoolMode.TRANSACTION
    admin_slots: int = 5
    listen_addr: str = "127.0.0.1"
    listen_port: int = 6432
    overrides: SizingOverrides = field(default_factory=SizingOverrides)

    @property
    def pools(self) -> int:
        """Pools per process: every (database, user) pair is a pool."""
        return len(self.databases) * len(self.users)


@dataclass(frozen=True)
class AppNode:
    """A Django app node: web workers, Celery workers and other clients of the database."""

    name: str
    server: ServerKind = ServerKind.WSGI_SYNC
    workers: int = 1
    threads: int = 1
    celery_concurrency: int = 0
    extra_clients: int = 0
    pgbouncer_hosts: tuple[str, ...] = ()
    redis_hosts: tuple[str, ...] = ()
    address: str | None = None

    @property
    def per_process(self) -> int:
        """Connections one web process can hold at once: a sync worker 1, else one per thread."""
        return 1 if self.server is ServerKind.WSGI_SYNC else self.threads

    @property
    def web_connections(self) -> int:
        """Connections the web server can hold at once: one per thread (Django keeps one per thread).

        >>> AppNode("a", ServerKind.WSGI_SYNC, workers=4, threads=8).web_connections
        4
        >>> AppNode("a", ServerKind.WSGI_GTHREAD, workers=4, threads=8).web_connections
        32
        """
        return self.workers * self.per_process

    @property
    def demand(self) -> int:
        """Client connections the node can open at once (web, Celery, extra clients)."""
        return self.web_connections + self.celery_concurrency + self.extra_clients


@dataclass(frozen=True)
class RedisHost:
    """One Redis instance and how its memory budget is decided."""

    name: str
    profile: RedisProfile = RedisProfile.CACHE
    maxmemory_mb: int | None = None
    memory_share: float = 0.25
    host_memory_mb: int | None = None
    maxmemory_policy: str | None = None
    ops_slots: int = 10


@dataclass(frozen=True)
class Topology:
    """Everything the sizing needs: the database, the PgBouncer tier, the app nodes, Redis."""

    database: DatabaseCapacity
    pgbouncers: tuple[PgBouncerHost, ...]
    app_nodes: tuple[AppNode, ...] = ()
    redis: tuple[RedisHost, ...] = ()
    failover_headroom: int = 0

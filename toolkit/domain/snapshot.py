"""What doctor gathered: the topology, its plan, and the live state of every target, all frozen.

Adapters build these objects from rows by column name; checks (pure functions) only read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.domain.django import DjangoProfile
from toolkit.domain.errors import SizingError
from toolkit.domain.models import Topology
from toolkit.domain.numbers import as_int

# SHOW POOLS, DATABASES, STATS and CLIENTS/SERVERS rows live beside their parser; re-exported here.
from toolkit.domain.pgbouncer_rows import ClientConn, DatabaseRow, PoolState, StatsRow
from toolkit.domain.plan import Plan

__all__ = [
    "Backend",
    "ClientConn",
    "DatabaseRow",
    "PgBouncerState",
    "PoolState",
    "PostgresState",
    "RedisState",
    "Snapshot",
    "StatsRow",
    "TargetStatus",
]


@dataclass(frozen=True)
class TargetStatus:
    """Whether one target could be read, how long it took, and why not."""

    name: str
    kind: str  # pgbouncer, postgres, redis, django
    address: str
    ok: bool
    elapsed: float = 0.0
    cause: str | None = None  # refused, timed out, authentication failed, host name does not resolve ...
    error: str | None = None  # the one-line message


@dataclass(frozen=True)
class PgBouncerState:
    """One PgBouncer process as its admin console reported it."""

    host: str  # inventory host
    address: str
    version: str
    config: Mapping[str, str]
    pools: tuple[PoolState, ...]
    databases: tuple[DatabaseRow, ...]
    clients: tuple[ClientConn, ...]
    servers: tuple[ClientConn, ...]
    stats: tuple[StatsRow, ...] = ()
    lists: Mapping[str, int] = field(default_factory=dict)
    fd_limit: int | None = None  # the process's open-files limit, when doctor runs on its host

    @property
    def max_prepared_statements(self) -> int:
        """SHOW CONFIG's max_prepared_statements; 0 when absent (before 1.21) or unreadable."""
        return max(as_int(self.config.get("max_prepared_statements")), 0)


@dataclass(frozen=True)
class Backend:
    """One row of pg_stat_activity (client backends and others), ages in seconds."""

    pid: int
    usename: str
    datname: str
    application_name: str
    client_addr: str
    backend_type: str
    state: str
    xact_age: float | None
    query_age: float | None
    state_age: float | None
    wait_event_type: str
    blocked_by: tuple[int, ...]
    query: str


@dataclass(frozen=True)
class PostgresState:
    """The database server's capacity settings and its sessions."""

    address: str
    version: str
    settings: Mapping[str, str]
    backends: tuple[Backend, ...]


@dataclass(frozen=True)
class RedisState:
    """One Redis instance: INFO, CONFIG GET and a bounded sample of TTLs under the app prefix."""

    host: str
    address: str
    info: Mapping[str, Any]
    config: Mapping[str, str]
    sampled_keys: int = 0
    keys_without_ttl: int = 0
    sample_prefix: str = ""
    anonymous_ok: bool = False  # a PING without credentials was answered
    # CLIENT LIST: connections of users other than doctor's ops user, by client IP; None: not read.
    clients_by_ip: Mapping[str, int] | None = None


@dataclass(frozen=True)
class Snapshot:
    """Everything the checks read."""

    topology: Topology
    plan: Plan | None
    plan_error: SizingError | None = None  # why ``plan`` is None: its kind picks the capacity finding
    targets: tuple[TargetStatus, ...] = ()
    pgbouncer: tuple[PgBouncerState, ...] = ()
    postgres: PostgresState | None = None
    redis: tuple[RedisState, ...] = ()
    django: DjangoProfile | None = None
    offline: bool = False
    # Each app node's settings, read with the node's own django_settings_* variables.
    django_nodes: Mapping[str, DjangoProfile] = field(default_factory=dict)
    # CVE ids the inventory acknowledges per host (toolkit_acknowledged_cves: a patched build).
    acknowledged_cves: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The Redis app user's ACL command rules per Redis host (redis_app_command_rules).
    redis_app_rules: Mapping[str, str] = field(default_factory=dict)

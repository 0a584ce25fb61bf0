# Generated from toolkit/domain/plan.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/plan.py and run `python scripts/generate_plugin_utils.py`.
"""The result of sizing: what each PgBouncer and Redis gets, and the connection budget, with reasons."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PLAN_SCHEMA = "toolkit.plan/v1"

# The PgBouncer settings the plan decides. The role renders them, doctor compares them with SHOW CONFIG.
PGBOUNCER_SIZED_SETTINGS = (
    "default_pool_size",
    "min_pool_size",
    "reserve_pool_size",
    "max_db_connections",
    "max_user_connections",
    "max_client_conn",
)


@dataclass(frozen=True)
class Sized:
    """One number and the reason for it, in words."""

    value: int
    reason: str


@dataclass(frozen=True)
class BudgetLine:
    """One line of the server-connection budget: what takes slots and why."""

    item: str
    value: int
    reason: str


@dataclass(frozen=True)
class Budget:
    """PostgreSQL's connection slots and what each part of the topology takes of them."""

    max_connections: int
    usable: int
    pgbouncer_server_connections: int
    active_target: int
    lines: tuple[BudgetLine, ...]

    @property
    def spare(self) -> int:
        """Usable slots no PgBouncer process can take."""
        return self.usable - self.pgbouncer_server_connections


@dataclass(frozen=True)
class PgBouncerPlan:
    """The sized settings of every process on one PgBouncer host."""

    host: str
    processes: int
    pool_mode: str
    pools: int
    client_demand: int
    settings: tuple[tuple[str, Sized], ...]
    nofile: Sized

    def value(self, name: str) -> int:
        """Return the planned value of one sized setting."""
        return dict(self.settings)[name].value

    @property
    def server_connections(self) -> int:
        """Server connections all processes of this host can open (pools and reserves)."""
        per_pool = self.value("default_pool_size") + self.value("reserve_pool_size")
        return self.processes * self.pools * per_pool


@dataclass(frozen=True)
class RedisPlan:
    """The sized settings of one Redis instance."""

    host: str
    profile: str
    client_demand: int
    maxclients: Sized
    maxmemory: int | None
    maxmemory_reason: str
    maxmemory_policy: str
    policy_reason: str
    nofile: Sized


@dataclass(frozen=True)
class Plan:
    """Everything the sizing decided for one topology."""

    budget: Budget
    pgbouncer: tuple[PgBouncerPlan, ...]
    redis: tuple[RedisPlan, ...]
    warnings: tuple[str, ...] = ()  # the plan fits, but not as the database runs best

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON output and for Ansible (keyed by host name)."""
        return {
            "schema": PLAN_SCHEMA,
            "budget": {
                "max_connections": self.budget.max_connections,
                "usable": self.budget.usable,
                "pgbouncer_server_connections": self.budget.pgbouncer_server_connections,
                "spare": self.budget.spare,
                "active_target": self.budget.active_target,
                "lines": [
                    {"item": ln.item, "value": ln.value, "reason": ln.reason} for ln in self.budget.lines
                ],
            },
            "pgbouncer": {
                p.host: {
                    "host": p.host,
                    "processes": p.processes,
                    "pool_mode": p.pool_mode,
                    "pools": p.pools,
                    "client_demand": p.client_demand,
                    "server_connections": p.server_connections,
                    "settings": {k: s.value for k, s in p.settings},
                    "nofile": p.nofile.value,
                    "reasons": {**{k: s.reason for k, s in p.settings}, "nofile": p.nofile.reason},
                }
                for p in self.pgbouncer
            },
            "redis": {
                r.host: {
                    "host": r.host,
                    "profile": r.profile,
                    "client_demand": r.client_demand,
                    "settings": {
                        "maxclients": r.maxclients.value,
                        "maxmemory": r.maxmemory,
                        "maxmemory-policy": r.maxmemory_policy,
                    },
                    "reasons": {
                        "maxclients": r.maxclients.reason,
                        "maxmemory": r.maxmemory_reason,
                        "maxmemory-policy": r.policy_reason,
                        "nofile": r.nofile.reason,
                    },
                    "nofile": r.nofile.value,
                }
                for r in self.redis
            },
            "warnings": list(self.warnings),
        }

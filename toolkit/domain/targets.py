"""Where the toolkit connects: every PgBouncer, the PostgreSQL server and every Redis of the inventory.

The access model, resolved once here for every command: addresses, user names (the stats user, the
admin user the runbooks and the sweep log in as), databases and key prefixes come from the inventory,
each with one default in :data:`TARGET_DEFAULTS`; passwords never do (the CLI reads them from the
environment or a secrets directory).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from toolkit.domain.inventory import DEFAULTS, PGBOUNCER_GROUP, REDIS_GROUP, HostVars
from toolkit.domain.models import Topology

# Listening on every address: connect to the host's inventory address instead.
_WILDCARDS = {"*", "0.0.0.0", "::", ""}  # noqa: S104 - compared against, not bound

# Inventory variables doctor reads (documented in docs/inventory.md), with their defaults.
TARGET_DEFAULTS = {
    "toolkit_pgbouncer_user": "pgbouncer_stats",
    "toolkit_pgbouncer_admin_user": "pgbouncer_admin",
    "toolkit_postgres_user": "toolkit_monitor",
    "toolkit_postgres_dbname": "postgres",
    "toolkit_redis_user": "toolkit",
    "toolkit_redis_key_prefix": "",
}


class EndpointKind(enum.StrEnum):
    """What a target is; every reader dispatches on it exhaustively (an unknown kind is an error)."""

    PGBOUNCER = "pgbouncer"
    POSTGRES = "postgres"
    REDIS = "redis"


@dataclass(frozen=True)
class Endpoint:
    """One target doctor reads."""

    kind: EndpointKind
    name: str  # the inventory host (or "postgres")
    address: str
    port: int
    user: str
    dbname: str = ""
    key_prefix: str = ""
    admin_user: str = ""  # PgBouncer: the admin_users member that may PAUSE, SET, KILL ...

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", EndpointKind(self.kind))  # ValueError on an unknown kind

    @property
    def label(self) -> str:
        """How output names the target."""
        return f"{self.kind}@{self.address}:{self.port}"


def _address(v: HostVars, listen_key: str, override_key: str) -> str:
    override = v.text(override_key, "")
    if override:
        return override
    listen = v.text(listen_key, DEFAULTS[listen_key])
    if listen.split(",")[0].strip() not in _WILDCARDS:
        return listen.split(",")[0].strip()
    return v.text("ansible_host", v.host)


def endpoints(
    topology: Topology, groups: Mapping[str, Any], hostvars: Mapping[str, Mapping[str, Any]]
) -> tuple[Endpoint, ...]:
    """Every target of the inventory, PgBouncers first."""
    out: list[Endpoint] = []
    for host in groups.get(PGBOUNCER_GROUP, ()):
        v = HostVars(host, hostvars.get(host, {}))
        out.append(
            Endpoint(
                EndpointKind.PGBOUNCER,
                host,
                _address(v, "pgbouncer_listen_addr", "toolkit_pgbouncer_address"),
                v.integer("pgbouncer_listen_port", DEFAULTS["pgbouncer_listen_port"], minimum=1),
                v.text("toolkit_pgbouncer_user", TARGET_DEFAULTS["toolkit_pgbouncer_user"]),
                admin_user=v.text(
                    "toolkit_pgbouncer_admin_user", TARGET_DEFAULTS["toolkit_pgbouncer_admin_user"]
                ),
            )
        )
    first = groups.get(PGBOUNCER_GROUP, ())[0]
    v = HostVars(first, hostvars.get(first, {}))
    out.append(
        Endpoint(
            EndpointKind.POSTGRES,
            "postgres",
            topology.database.host,
            topology.database.port,
            v.text("toolkit_postgres_user", TARGET_DEFAULTS["toolkit_postgres_user"]),
            dbname=v.text("toolkit_postgres_dbname", TARGET_DEFAULTS["toolkit_postgres_dbname"]),
        )
    )
    for host in groups.get(REDIS_GROUP, ()):
        v = HostVars(host, hostvars.get(host, {}))
        out.append(
            Endpoint(
                EndpointKind.REDIS,
                host,
                _address(v, "redis_listen_addr", "toolkit_redis_address"),
                v.integer("redis_listen_port", DEFAULTS["redis_listen_port"], minimum=1),
                v.text("toolkit_redis_user", TARGET_DEFAULTS["toolkit_redis_user"]),
                key_prefix=str(v.values.get("toolkit_redis_key_prefix") or ""),
            )
        )
    return tuple(out)

"""The Django settings profile doctor reads: what matters for pooling and caching, never a secret.

The profile is produced by importing the app's settings in the app's own interpreter (see
``toolkit.adapters.django_settings``) and emitted as JSON; :meth:`DjangoProfile.from_dict` parses that
JSON at the boundary, so checks only ever see these frozen objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from toolkit.domain.models import PgBouncerHost, PoolMode, Topology

DJANGO_PROFILE_SCHEMA = "toolkit.django-profile/v1"


@dataclass(frozen=True)
class DatabaseAlias:
    """One entry of settings.DATABASES (password left out)."""

    alias: str
    engine: str
    host: str
    port: int | None
    name: str
    user: str
    conn_max_age: int | None  # None: persistent forever
    conn_health_checks: bool
    disable_server_side_cursors: bool
    atomic_requests: bool
    options: Mapping[str, Any] = field(default_factory=dict)  # secrets removed

    @property
    def is_postgresql(self) -> bool:
        """Whether the alias uses a PostgreSQL backend (PgBouncer only fronts those)."""
        return "postgresql" in self.engine or "postgis" in self.engine


@dataclass(frozen=True)
class CacheAlias:
    """One entry of settings.CACHES (credentials in LOCATION masked)."""

    alias: str
    backend: str
    location: tuple[str, ...]
    key_prefix: str
    version: int
    timeout: float | None  # None: keys never expire

    @property
    def is_local_memory(self) -> bool:
        """A per-process cache: every worker of every node holds its own copy."""
        return self.backend.endswith("LocMemCache")

    @property
    def is_redis(self) -> bool:
        """Django's Redis backend, or django-redis."""
        return "redis" in self.backend.lower()


@dataclass(frozen=True)
class DjangoProfile:
    """The pooling- and cache-relevant settings of one Django deployment."""

    settings_module: str
    django_version: str
    databases: tuple[DatabaseAlias, ...]
    caches: tuple[CacheAlias, ...]
    asgi_application: str | None = None
    wsgi_application: str | None = None
    middleware: tuple[str, ...] | None = None  # None: the probe did not report MIDDLEWARE
    backend_slots: object = None  # settings.TOOLKIT_BACKEND_SLOTS as the app set it, if at all

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DjangoProfile:
        """Parse the probe's JSON (schema ``toolkit.django-profile/v1``); raise ValueError if malformed."""
        if data.get("schema") != DJANGO_PROFILE_SCHEMA:
            raise ValueError(f"not a {DJANGO_PROFILE_SCHEMA} document")
        dbs = tuple(
            DatabaseAlias(
                alias=str(d["alias"]),
                engine=str(d["engine"]),
                host=str(d.get("host") or ""),
                port=int(d["port"]) if d.get("port") not in (None, "") else None,
                name=str(d.get("name") or ""),
                user=str(d.get("user") or ""),
                conn_max_age=None if d.get("conn_max_age") is None else int(d["conn_max_age"]),
                conn_health_checks=bool(d.get("conn_health_checks", False)),
                disable_server_side_cursors=bool(d.get("disable_server_side_cursors", False)),
                atomic_requests=bool(d.get("atomic_requests", False)),
                options=dict(d.get("options") or {}),
            )
            for d in data.get("databases", [])
        )
        caches = tuple(
            CacheAlias(
                alias=str(c["alias"]),
                backend=str(c["backend"]),
                location=tuple(str(x) for x in c.get("location", [])),
                key_prefix=str(c.get("key_prefix") or ""),
                version=int(c.get("version", 1)),
                timeout=None if c.get("timeout") is None else float(c["timeout"]),
            )
            for c in data.get("caches", [])
        )
        return cls(
            settings_module=str(data.get("settings_module", "")),
            django_version=str(data.get("django_version", "")),
            databases=dbs,
            caches=caches,
            asgi_application=data.get("asgi_application"),
            wsgi_application=data.get("wsgi_application"),
            middleware=None if data.get("middleware") is None else tuple(str(m) for m in data["middleware"]),
            backend_slots=data.get("backend_slots"),
        )


# Names under which an app node reaches itself. An empty HOST makes libpq use its Unix socket, and a
# HOST starting with "/" names a socket directory: both are connections to the same machine.
LOOPBACK_NAMES = frozenset({"", "localhost", "127.0.0.1", "::1", "ip6-localhost"})
POSTGRESQL_DEFAULT_PORT = 5432  # libpq's default when PORT is empty


def is_local_host(host: str) -> bool:
    """Whether a DATABASES HOST points at the machine the app runs on.

    >>> [is_local_host(h) for h in ("", "localhost", "127.0.0.5", "/var/run/postgresql", "db1")]
    [True, True, True, True, False]
    """
    h = host.strip().lower()
    return h in LOOPBACK_NAMES or h.startswith(("127.", "/"))


@dataclass(frozen=True)
class Route:
    """Where one database alias's connections go, as far as the topology tells."""

    pgbouncers: tuple[PgBouncerHost, ...] = ()
    direct: bool = False  # straight to the database's host:port

    @property
    def through_pgbouncer(self) -> bool:
        """Whether the alias connects to at least one PgBouncer of the topology."""
        return bool(self.pgbouncers)

    @property
    def transaction_pooled(self) -> tuple[PgBouncerHost, ...]:
        """The PgBouncers on the route that pool per transaction (or stricter, per statement)."""
        return tuple(p for p in self.pgbouncers if p.pool_mode is not PoolMode.SESSION)


def route(alias: DatabaseAlias, topology: Topology) -> Route:
    """Decide whether ``alias`` goes through PgBouncer, straight to the database, or neither.

    The rule, applied to each host of a comma-separated HOST (libpq accepts several), with an empty
    PORT read as 5432:

    - A non-local host goes through a PgBouncer when it equals that PgBouncer's ``listen_addr`` or its
      inventory name (case-insensitive) and the port equals its ``listen_port``.
    - A local host (loopback name or address, empty, or a socket directory) goes through every
      PgBouncer whose ``listen_port`` equals the port. When some of those PgBouncers run on app nodes
      (the co-located layout: the node is in both groups), only those count: each node talks to its
      own PgBouncer.
    - Otherwise the alias is direct when its host and port equal the database's ``database_host`` and
      ``database_port`` (two local names count as equal).

    >>> from dataclasses import replace
    >>> from toolkit.domain.models import AppNode, DatabaseCapacity
    >>> topo = Topology(DatabaseCapacity(100, 2, host="10.0.0.9"), (PgBouncerHost("app1", ("db",), ("u",)),),
    ...                 (AppNode("app1"),))
    >>> a = DatabaseAlias("default", "django.db.backends.postgresql", "127.0.0.1", 6432, "db", "u",
    ...                   0, False, True, False)
    >>> [p.name for p in route(a, topo).pgbouncers]
    ['app1']
    >>> route(replace(a, host="10.0.0.9", port=None), topo)
    Route(pgbouncers=(), direct=True)
    """
    port = alias.port if alias.port is not None else POSTGRESQL_DEFAULT_PORT
    hosts = [h.strip() for h in alias.host.split(",")] if alias.host else [""]
    app_names = {n.name for n in topology.app_nodes}
    found: list[PgBouncerHost] = []
    for host in hosts:
        if is_local_host(host):
            same_port = [p for p in topology.pgbouncers if p.listen_port == port]
            colocated = [p for p in same_port if p.name in app_names]
            found.extend(colocated or same_port)
        else:
            found.extend(
                p
                for p in topology.pgbouncers
                if p.listen_port == port and host.lower() in (p.listen_addr.lower(), p.name.lower())
            )
    if found:
        return Route(pgbouncers=tuple(dict.fromkeys(found)))
    db = topology.database
    direct = port == db.port and any(
        h.lower() == db.host.lower() or (is_local_host(h) and is_local_host(db.host)) for h in hosts
    )
    return Route(direct=direct)

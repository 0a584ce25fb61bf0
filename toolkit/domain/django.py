"""The Django settings profile doctor reads: what matters for pooling and caching, never a secret.

The profile is produced by importing the app's settings in the app's own interpreter (see
``toolkit.adapters.django_settings``) and emitted as JSON; :meth:`DjangoProfile.from_dict` parses that
JSON at the boundary, so checks only ever see these frozen objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
        )

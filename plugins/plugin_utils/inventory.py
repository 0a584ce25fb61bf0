# Generated from toolkit/domain/inventory.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/inventory.py and run `python scripts/generate_plugin_utils.py`.
"""Build a :class:`Topology` from inventory data: group membership and per-host variables.

Both callers pass plain values: the CLI the output of ``ansible-inventory --list``, Ansible the
variables its ``toolkit`` role extracts (only the names in :data:`INVENTORY_KEYS`). Every
problem raises :class:`InventoryError` naming the variable, the host and what is wrong.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from types import MappingProxyType
from typing import Any, TypeVar

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import InventoryError
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.known_variables import (
    check_known_variables,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.models import (
    AppNode,
    DatabaseCapacity,
    PgBouncerHost,
    PoolMode,
    RedisHost,
    RedisProfile,
    ServerKind,
    SizingOverrides,
    Topology,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.role_inputs import (
    NULLABLE,
    check_host_inputs,
)
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.validate import (
    INT32_MAX,
    PG_MAX_BACKENDS,
    Invalid,
    bounded,
    show,
    text,
    to_int,
    to_number,
)


def _default(model: type, field: str) -> Any:
    """The default of ``model``'s dataclass ``field`` (an enum as its inventory spelling)."""
    value = next(f.default for f in fields(model) if f.name == field)
    return value.value if isinstance(value, enum.Enum) else value


# The one source of the defaults of the inventory variables the plan reads: the models' own defaults.
# The roles' defaults/main.yml and meta/argument_specs.yml repeat some of them for their interface; a
# unit test (tests/unit/test_defaults_agree.py) holds every repetition to this mapping.
DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        "database_host": _default(DatabaseCapacity, "host"),
        "database_port": _default(DatabaseCapacity, "port"),
        "database_superuser_reserved_connections": _default(
            DatabaseCapacity, "superuser_reserved_connections"
        ),
        "database_reserved_connections": _default(DatabaseCapacity, "reserved_connections"),
        "database_spindles": _default(DatabaseCapacity, "spindles"),
        "database_hold_factor": _default(DatabaseCapacity, "hold_factor"),
        "database_cpu_share": _default(DatabaseCapacity, "cpu_share"),
        "pgbouncer_processes": _default(PgBouncerHost, "processes"),
        "pgbouncer_pool_mode": _default(PgBouncerHost, "pool_mode"),
        "pgbouncer_admin_slots": _default(PgBouncerHost, "admin_slots"),
        "pgbouncer_listen_addr": _default(PgBouncerHost, "listen_addr"),
        "pgbouncer_listen_port": _default(PgBouncerHost, "listen_port"),
        "pgbouncer_failover_headroom": _default(Topology, "failover_headroom"),
        "django_server": _default(AppNode, "server"),
        "django_workers": _default(AppNode, "workers"),
        "django_threads": _default(AppNode, "threads"),
        "django_celery_concurrency": _default(AppNode, "celery_concurrency"),
        "django_extra_clients": _default(AppNode, "extra_clients"),
        "redis_profile": _default(RedisHost, "profile"),
        "redis_memory_share": _default(RedisHost, "memory_share"),
        "redis_ops_slots": _default(RedisHost, "ops_slots"),
        "redis_listen_addr": "127.0.0.1",  # where doctor finds Redis (toolkit/domain/targets.py)
        "redis_listen_port": 6379,
    }
)

PGBOUNCER_GROUP = "pgbouncer"
DJANGO_GROUP = "django"
REDIS_GROUP = "redis"

DATABASE_KEYS = (
    "database_host",
    "database_port",
    "database_max_connections",
    "database_superuser_reserved_connections",
    "database_reserved_connections",
    "database_bypass_connections",
    "database_cores",
    "database_spindles",
    "database_hold_factor",
    "database_cpu_share",
)
PGBOUNCER_KEYS = (
    "pgbouncer_processes",
    "pgbouncer_pool_mode",
    "pgbouncer_databases",
    "pgbouncer_auth_users",
    "pgbouncer_listen_addr",
    "pgbouncer_listen_port",
    "pgbouncer_failover_headroom",
    "pgbouncer_admin_slots",
    "pgbouncer_default_pool_size",
    "pgbouncer_min_pool_size",
    "pgbouncer_reserve_pool_size",
    "pgbouncer_max_client_conn",
)
DJANGO_KEYS = (
    "django_server",
    "django_workers",
    "django_threads",
    "django_celery_concurrency",
    "django_extra_clients",
    "django_pgbouncer_hosts",
    "django_redis_hosts",
)
REDIS_KEYS = (
    "redis_profile",
    "redis_maxmemory_mb",
    "redis_memory_share",
    "redis_host_memory_mb",
    "redis_maxmemory_policy",
    "redis_ops_slots",
)
# Every variable the sizing reads; the Ansible side passes exactly these (secrets never).
INVENTORY_KEYS = ("ansible_host", *DATABASE_KEYS, *PGBOUNCER_KEYS, *DJANGO_KEYS, *REDIS_KEYS)

E = TypeVar("E", ServerKind, PoolMode, RedisProfile)
_MISSING = object()


class HostVars:
    """Typed, validated reads of one host's variables."""

    def __init__(self, host: str, values: Mapping[str, Any]) -> None:
        self.host = host
        self.values = values

    def _raw(self, key: str) -> Any:
        value = self.values.get(key, _MISSING)
        if value is None:
            return _MISSING
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            raise InventoryError(key, self.host, "must be a literal value, not a template")
        return value

    def _invalid(self, key: str, exc: Invalid) -> InventoryError:
        return InventoryError(key, self.host, f"{exc.why}, got {show(exc.got)}" if exc.show else exc.why)

    def integer(self, key: str, default: int | None, minimum: int = 0, maximum: int = INT32_MAX) -> int:
        value = self.optional_integer(key, minimum, maximum)
        if value is None:
            if default is None:
                raise InventoryError(key, self.host, "is required (an integer)")
            return default
        return value

    def optional_integer(self, key: str, minimum: int = 0, maximum: int = INT32_MAX) -> int | None:
        """An int, or a string of ASCII digits (never a bool, a float or other digits), in range."""
        value = self._raw(key)
        if value is _MISSING:
            return None
        try:
            return bounded(to_int(value), minimum, maximum)
        except Invalid as exc:
            raise self._invalid(key, exc) from None

    def number(self, key: str, default: float, low: float, high: float | None = None) -> float:
        """A finite number above ``low`` (and at most ``high``): no NaN, infinity or bool."""
        value = self._raw(key)
        if value is _MISSING:
            return default
        try:
            n = to_number(value)
        except Invalid as exc:
            raise self._invalid(key, exc) from None
        if n <= low or (high is not None and n > high):
            bound = f"in ({low}, {high}]" if high is not None else f"above {low}"
            raise InventoryError(key, self.host, f"must be {bound}, got {n}")
        return n

    def text(self, key: str, default: str) -> str:
        """A non-empty string of one line (no control characters)."""
        value = self._raw(key)
        if value is _MISSING:
            return default
        try:
            return text(value)
        except Invalid as exc:
            raise self._invalid(key, exc) from None

    def choice(self, key: str, enum: type[E], default: E) -> E:
        value = self._raw(key)
        if value is _MISSING:
            return default
        try:
            return enum(value)
        except ValueError:
            allowed = ", ".join(e.value for e in enum)
            raise InventoryError(key, self.host, f"must be one of {allowed}, got {value!r}") from None

    def names(
        self, key: str, default: Sequence[str] | None = None, item_key: str = "name"
    ) -> tuple[str, ...]:
        """A list of names: plain strings, or mappings with ``item_key``."""
        value = self._raw(key)
        if value is _MISSING:
            if default is None:
                raise InventoryError(key, self.host, "is required (a non-empty list)")
            return tuple(default)
        if not isinstance(value, list) or not value:
            raise InventoryError(key, self.host, f"must be a non-empty list, got {value!r}")
        out = []
        for i, item in enumerate(value):
            name = item.get(item_key) if isinstance(item, Mapping) else item
            if not isinstance(name, str) or not name:
                # Never the entry itself: an auth user's entry holds its password.
                raise InventoryError(key, self.host, f"entry {i + 1} needs a non-empty '{item_key}'")
            out.append(name)
        if len(set(out)) != len(out):
            raise InventoryError(key, self.host, f"has duplicate names: {out}")
        return tuple(out)

    def counts(self, key: str, default: tuple[tuple[str, int], ...]) -> tuple[tuple[str, int], ...]:
        value = self._raw(key)
        if value is _MISSING:
            return default
        if not isinstance(value, Mapping):
            raise InventoryError(key, self.host, f"must be a mapping of name to count, got {value!r}")
        out = []
        for name, n in value.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise InventoryError(key, self.host, f"{name!r} must be an integer >= 0, got {n!r}")
            out.append((str(name), int(n)))
        return tuple(out)


def topology_from_inventory(
    groups: Mapping[str, Sequence[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
    *,
    check_inputs: bool = True,
) -> Topology:
    """Return the topology that ``groups`` and ``hostvars`` describe.

    With ``check_inputs`` every host's variables are checked first: a name under a toolkit prefix
    that nothing knows (:func:`toolkit.domain.known_variables.check_known_variables`), then the role
    inputs (:func:`toolkit.domain.role_inputs.check_host_inputs`), values still written as templates
    left to the play. The Ansible filter passes False: its hostvars carry user names without passwords,
    and the play has checked the rendered inputs before it sizes anything.
    """
    pgb_names = list(groups.get(PGBOUNCER_GROUP, ()))
    if not pgb_names:
        raise InventoryError("groups", None, "the 'pgbouncer' group has no hosts; add the PgBouncer hosts")

    for host, values in hostvars.items() if check_inputs else ():
        check_known_variables(host, values)
        check_host_inputs(host, values, rendered=False, nullable=NULLABLE | set(INVENTORY_KEYS))

    def host_vars(host: str) -> HostVars:
        return HostVars(host, hostvars.get(host, {}))

    database = _agreed(pgb_names, hostvars, DATABASE_KEYS, lambda h: _database(host_vars(h)))
    headroom = _agreed(
        pgb_names,
        hostvars,
        ("pgbouncer_failover_headroom",),
        lambda h: host_vars(h).integer(
            "pgbouncer_failover_headroom", DEFAULTS["pgbouncer_failover_headroom"]
        ),
    )
    pgbouncers = tuple(_pgbouncer(host_vars(h)) for h in pgb_names)
    redis_names = list(groups.get(REDIS_GROUP, ()))
    nodes = tuple(_app_node(host_vars(h), pgb_names, redis_names) for h in groups.get(DJANGO_GROUP, ()))
    redis = tuple(_redis(host_vars(h)) for h in redis_names)
    return Topology(database, pgbouncers, nodes, redis, headroom)


T = TypeVar("T")


def _agreed(
    hosts: Sequence[str],
    hostvars: Mapping[str, Mapping[str, Any]],
    keys: Sequence[str],
    read: Callable[[str], T],
) -> T:
    """Read a tier-wide value from every host and require that they agree."""
    first = read(hosts[0])
    for h in hosts[1:]:
        if read(h) != first:
            differing = [k for k in keys if hostvars.get(h, {}).get(k) != hostvars.get(hosts[0], {}).get(k)]
            raise InventoryError(
                differing[0] if differing else keys[0],
                h,
                f"differs from host {hosts[0]!r}; the tier shares one value (set it in group_vars)",
            )
    return first


def _database(v: HostVars) -> DatabaseCapacity:
    d = DEFAULTS
    return DatabaseCapacity(
        max_connections=v.integer("database_max_connections", None, minimum=1, maximum=PG_MAX_BACKENDS),
        cores=v.integer("database_cores", None, minimum=1),
        superuser_reserved_connections=v.integer(
            "database_superuser_reserved_connections", d["database_superuser_reserved_connections"]
        ),
        reserved_connections=v.integer("database_reserved_connections", d["database_reserved_connections"]),
        bypass_connections=v.counts(
            "database_bypass_connections", _default(DatabaseCapacity, "bypass_connections")
        ),
        spindles=v.integer("database_spindles", d["database_spindles"]),
        hold_factor=v.number("database_hold_factor", d["database_hold_factor"], low=0.0),
        cpu_share=v.number("database_cpu_share", d["database_cpu_share"], low=0.0, high=1.0),
        host=v.text("database_host", d["database_host"]),
        port=v.integer("database_port", d["database_port"], minimum=1, maximum=65535),
    )


def _pgbouncer(v: HostVars) -> PgBouncerHost:
    return PgBouncerHost(
        name=v.host,
        databases=v.names("pgbouncer_databases"),
        users=v.names("pgbouncer_auth_users"),
        processes=v.integer("pgbouncer_processes", DEFAULTS["pgbouncer_processes"], minimum=1),
        pool_mode=v.choice("pgbouncer_pool_mode", PoolMode, PoolMode(DEFAULTS["pgbouncer_pool_mode"])),
        admin_slots=v.integer("pgbouncer_admin_slots", DEFAULTS["pgbouncer_admin_slots"]),
        listen_addr=v.text("pgbouncer_listen_addr", DEFAULTS["pgbouncer_listen_addr"]),
        listen_port=v.integer(
            "pgbouncer_listen_port", DEFAULTS["pgbouncer_listen_port"], minimum=1, maximum=65535
        ),
        overrides=SizingOverrides(
            default_pool_size=v.optional_integer("pgbouncer_default_pool_size", minimum=1),
            min_pool_size=v.optional_integer("pgbouncer_min_pool_size"),
            reserve_pool_size=v.optional_integer("pgbouncer_reserve_pool_size"),
            max_client_conn=v.optional_integer("pgbouncer_max_client_conn", minimum=1),
        ),
    )


def _app_node(v: HostVars, pgbouncers: Sequence[str], redis: Sequence[str]) -> AppNode:
    default_pgb = [v.host] if v.host in pgbouncers else list(pgbouncers)
    pgb_hosts = v.names("django_pgbouncer_hosts", default_pgb)
    for h in pgb_hosts:
        if h not in pgbouncers:
            raise InventoryError("django_pgbouncer_hosts", v.host, f"{h!r} is not in the 'pgbouncer' group")
    redis_hosts = v.names("django_redis_hosts", list(redis)) if redis else ()
    for h in redis_hosts:
        if h not in redis:
            raise InventoryError("django_redis_hosts", v.host, f"{h!r} is not in the 'redis' group")
    return AppNode(
        name=v.host,
        server=v.choice("django_server", ServerKind, ServerKind(DEFAULTS["django_server"])),
        workers=v.integer("django_workers", DEFAULTS["django_workers"]),
        threads=v.integer("django_threads", DEFAULTS["django_threads"], minimum=1),
        celery_concurrency=v.integer("django_celery_concurrency", DEFAULTS["django_celery_concurrency"]),
        extra_clients=v.integer("django_extra_clients", DEFAULTS["django_extra_clients"]),
        pgbouncer_hosts=pgb_hosts,
        redis_hosts=redis_hosts,
        address=v.text("ansible_host", v.host),
    )


def _redis(v: HostVars) -> RedisHost:
    profile = v.choice("redis_profile", RedisProfile, RedisProfile(DEFAULTS["redis_profile"]))
    policy = v.text("redis_maxmemory_policy", "") if v.values.get("redis_maxmemory_policy") else None
    if profile is RedisProfile.BROKER and policy not in (None, "noeviction"):
        raise InventoryError(
            "redis_maxmemory_policy",
            v.host,
            f"a broker must not evict (got {policy!r}): use noeviction or the cache profile",
        )
    return RedisHost(
        name=v.host,
        profile=profile,
        maxmemory_mb=v.optional_integer("redis_maxmemory_mb", minimum=1),
        memory_share=v.number("redis_memory_share", DEFAULTS["redis_memory_share"], low=0.0, high=1.0),
        host_memory_mb=v.optional_integer("redis_host_memory_mb", minimum=1),
        maxmemory_policy=policy,
        ops_slots=v.integer("redis_ops_slots", DEFAULTS["redis_ops_slots"]),
    )

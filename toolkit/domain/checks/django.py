"""Django settings that break under PgBouncer's transaction pooling, under ASGI, or without timeouts.

Only PostgreSQL aliases are checked (PgBouncer fronts nothing else). Whether an alias goes through a
PgBouncer or straight to the database is decided by :func:`toolkit.domain.django.route`, whose
docstring states the matching rule. The facts each check rests on are Django 5.2's documentation and
source: CONN_MAX_AGE defaults to 0 and should be 0 under ASGI; transaction pooling needs
DISABLE_SERVER_SIDE_CURSORS; OPTIONS["pool"] is one psycopg pool per process.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from typing import Any

from toolkit.domain import versions
from toolkit.domain.checks import django_admission
from toolkit.domain.checks.base import CheckInfo, unreachable
from toolkit.domain.django import DatabaseAlias, DjangoProfile, Route, route
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import PgBouncerHost, PoolMode, ServerKind, Topology
from toolkit.domain.snapshot import PgBouncerState, Snapshot

AREA = "django"

ASGI = "django.persistent_connections_under_asgi"
CURSORS = "django.server_side_cursors_with_transaction_pooling"
HEALTH = "django.missing_health_checks"
NATIVE_POOL = "django.native_pool_behind_pgbouncer"
BYPASS = "django.bypasses_pgbouncer"
CONNECT_TIMEOUT = "django.no_connect_timeout"
ATOMIC = "django.atomic_requests_with_transaction_pooling"
OPTIONS = "django.statement_timeout_option_through_pgbouncer"
PREPARED = "django.prepared_statements_with_transaction_pooling"
ADMISSION = django_admission.ID

CATALOG: tuple[CheckInfo, ...] = (
    CheckInfo("django.unreachable", "doctor could not import an app node's settings"),
    CheckInfo(ASGI, "persistent connections (CONN_MAX_AGE != 0) on an ASGI deployment"),
    CheckInfo(CURSORS, "server-side cursors enabled behind transaction pooling"),
    CheckInfo(HEALTH, "persistent connections without CONN_HEALTH_CHECKS"),
    CheckInfo(NATIVE_POOL, "Django's own connection pool stacked on PgBouncer"),
    CheckInfo(BYPASS, "a database alias connects straight to PostgreSQL, not through PgBouncer"),
    CheckInfo(CONNECT_TIMEOUT, "no connect_timeout: a hung pooler or database blocks workers"),
    CheckInfo(ATOMIC, "ATOMIC_REQUESTS behind transaction pooling"),
    CheckInfo(OPTIONS, "startup options (-c statement_timeout=...) sent through PgBouncer"),
    CheckInfo(PREPARED, "psycopg prepared statements behind a PgBouncer that cannot track them"),
    CheckInfo(ADMISSION, django_admission.TITLE),
)
# PgBouncer tracks protocol-level prepared statements in transaction mode from 1.21 on, when its
# max_prepared_statements is above 0 (the default from 1.24; 0 before).
PREPARED_STATEMENTS_SINCE = (1, 21, 0)

# psycopg_pool.ConnectionPool: min_size defaults to 4 and max_size to min_size.
PSYCOPG_POOL_DEFAULT_SIZE = 4
# Startup parameters PgBouncer always tracks and therefore accepts (inside "options" from 1.20 on).
PGBOUNCER_TRACKED_PARAMETERS = frozenset(
    {"client_encoding", "datestyle", "timezone", "standard_conforming_strings", "application_name"}
)


def run(snapshot: Snapshot) -> list[Finding]:
    """Return the django.* findings, once per distinct settings profile (nodes often share one)."""
    found = unreachable(
        snapshot,
        "django",
        "run doctor where the app's interpreter and code are, or fix "
        "the node's django_settings_* variables (docs/inventory.md)",
    )
    profiles: list[DjangoProfile] = []
    for profile in (*snapshot.django_nodes.values(), snapshot.django):
        if profile is not None and profile not in profiles:
            profiles.append(profile)
    topology = snapshot.topology
    for profile in profiles:
        for alias in profile.databases:
            if not alias.is_postgresql:
                continue
            path = route(alias, topology)
            for finding in _alias_findings(profile, alias, path, snapshot):
                if finding not in found:
                    found.append(finding)
    found.extend(django_admission.findings(snapshot))
    return found


def _alias_findings(
    profile: DjangoProfile, alias: DatabaseAlias, path: Route, snapshot: Snapshot
) -> Iterator[Finding]:
    topology = snapshot.topology
    target = f"django:{profile.settings_module}:{alias.alias}"
    age = "None (forever)" if alias.conn_max_age is None else alias.conn_max_age
    persistent = alias.conn_max_age != 0
    pooled = path.transaction_pooled
    asgi_nodes = [n.name for n in topology.app_nodes if n.server is ServerKind.ASGI]

    if persistent and asgi_nodes:
        yield Finding(
            ASGI,
            Severity.WARNING,
            target,
            f"CONN_MAX_AGE is {age} while {len(asgi_nodes)} app node(s) serve ASGI: each request's "
            "connection is left open instead of reused, and they accumulate",
            {"conn_max_age": alias.conn_max_age, "asgi_nodes": asgi_nodes},
            "set CONN_MAX_AGE to 0 for this alias; let PgBouncer keep the server connections warm",
        )

    if pooled and not alias.disable_server_side_cursors:
        yield Finding(
            CURSORS,
            Severity.CRITICAL,
            target,
            "DISABLE_SERVER_SIDE_CURSORS is False behind transaction pooling: QuerySet.iterator() "
            "fails with 'cursor does not exist' once a later fetch lands on another server connection",
            {"disable_server_side_cursors": False, **_pgbouncer_evidence(pooled)},
            "set DISABLE_SERVER_SIDE_CURSORS = True on this alias",
        )

    if persistent and not alias.conn_health_checks:
        yield Finding(
            HEALTH,
            Severity.WARNING,
            target,
            f"CONN_MAX_AGE is {age} without CONN_HEALTH_CHECKS: the first query after a pooler "
            "restart or idle timeout fails on a dead connection",
            {"conn_max_age": alias.conn_max_age, "conn_health_checks": False},
            "set CONN_HEALTH_CHECKS = True (one cheap check per request, only on reused connections)",
        )

    pool = alias.options.get("pool")
    if pool and path.through_pgbouncer:
        yield _native_pool(target, pool, path.pgbouncers, snapshot)

    if path.direct and topology.pgbouncers:
        db = topology.database
        yield Finding(
            BYPASS,
            Severity.WARNING,
            target,
            f"alias connects straight to the database at {db.host}:{db.port}, not through PgBouncer: "
            "its connections are outside the pool budget",
            {
                "alias_host": alias.host,
                "alias_port": alias.port,
                "database": f"{db.host}:{db.port}",
                "pgbouncers": [f"{p.listen_addr}:{p.listen_port}" for p in topology.pgbouncers],
                "bypass_budget": dict(db.bypass_connections),
            },
            "point HOST/PORT at a PgBouncer listen address; if this alias is meant to bypass "
            "(migrations, admin), count its connections in database_bypass_connections",
        )

    timeout = _connect_timeout(alias.options)
    if timeout is None:
        yield Finding(
            CONNECT_TIMEOUT,
            Severity.WARNING,
            target,
            "no positive connect_timeout in OPTIONS: a hung pooler or database blocks each worker "
            "in connect() with no limit",
            {"connect_timeout": alias.options.get("connect_timeout")},
            "set OPTIONS['connect_timeout'] to a few seconds (whole seconds; 0 means wait forever)",
        )

    if alias.atomic_requests and pooled:
        statement = [p for p in pooled if p.pool_mode is PoolMode.STATEMENT]
        yield Finding(
            ATOMIC,
            Severity.CRITICAL if statement else Severity.WARNING,
            target,
            (
                "ATOMIC_REQUESTS behind statement pooling: PgBouncer refuses every transaction block"
                if statement
                else "ATOMIC_REQUESTS behind transaction pooling: every request holds a server "
                "connection from its first query to its response"
            ),
            {"atomic_requests": True, **_pgbouncer_evidence(pooled)},
            "turn ATOMIC_REQUESTS off and wrap only the writes that need it in transaction.atomic()",
        )

    if path.through_pgbouncer:
        finding = _startup_options(target, alias, path.pgbouncers, snapshot.pgbouncer)
        if finding is not None:
            yield finding

    if pooled:
        prepared = _prepared_statements(target, alias, pooled, snapshot.pgbouncer)
        if prepared is not None:
            yield prepared


def _pgbouncer_evidence(hosts: tuple[PgBouncerHost, ...]) -> dict[str, Any]:
    return {
        "pgbouncers": [f"{p.name} ({p.listen_addr}:{p.listen_port})" for p in hosts],
        "pool_modes": sorted({p.pool_mode.value for p in hosts}),
    }


def _connect_timeout(options: Mapping[str, Any]) -> float | None:
    """The connect_timeout in seconds, or None when unset, unreadable or not positive (= no limit).

    >>> [_connect_timeout(o) for o in ({}, {"connect_timeout": "5"}, {"connect_timeout": 0})]
    [None, 5.0, None]
    """
    try:
        value = float(options["connect_timeout"])
    except (KeyError, TypeError, ValueError):
        return None
    return value if value > 0 else None


def _pool_size(pool: Any) -> int:
    """The most connections one process's psycopg pool may open.

    >>> [_pool_size(p) for p in (True, {"min_size": 2}, {"min_size": 2, "max_size": 10})]
    [4, 2, 10]
    """
    if isinstance(pool, Mapping):
        for key in ("max_size", "min_size"):
            value = pool.get(key)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    return PSYCOPG_POOL_DEFAULT_SIZE


def _native_pool(target: str, pool: Any, hosts: tuple[PgBouncerHost, ...], snapshot: Snapshot) -> Finding:
    topology: Topology = snapshot.topology
    processes = sum(n.workers + n.celery_concurrency + n.extra_clients for n in topology.app_nodes)
    size = _pool_size(pool)
    demand = processes * size
    planned = sum(n.demand for n in topology.app_nodes)
    evidence: dict[str, Any] = {
        "pool": pool,
        "pool_max_size": size,
        "processes": processes,
        "demand": demand,
        "planned_client_demand": planned,
        **_pgbouncer_evidence(hosts),
    }
    more = f"; up to {demand} client connections ({processes} processes x {size})" if processes else ""
    if processes and demand > planned:
        more += f", more than the {planned} the pools were sized for"
    return Finding(
        NATIVE_POOL,
        Severity.WARNING,
        target,
        f"OPTIONS['pool'] is set behind PgBouncer: two pools stacked{more}",
        evidence,
        "remove OPTIONS['pool'] and keep CONN_MAX_AGE = 0: PgBouncer already pools; or bypass "
        "PgBouncer and size max_size against max_connections",
    )


def startup_parameters(options: str) -> list[str]:
    """The parameter names a libpq ``options`` string sets (``-c name=value`` or ``--name=value``).

    >>> startup_parameters("-c statement_timeout=5000 --lock_timeout=1s -c search_path=app")
    ['statement_timeout', 'lock_timeout', 'search_path']
    >>> startup_parameters("-cstatement_timeout=5s")
    ['statement_timeout']
    """
    try:
        words = shlex.split(options)
    except ValueError:
        words = options.split()
    names: list[str] = []
    take_next = False
    for word in words:
        setting = None
        if take_next:
            setting, take_next = word, False
        elif word == "-c":
            take_next = True
        elif word.startswith(("-c", "--")):
            setting = word[2:]
        if setting and "=" in setting:
            names.append(setting.split("=", 1)[0].strip().replace("-", "_"))
    return names


def _listed(config: Mapping[str, str], key: str) -> set[str]:
    return {w.strip().lower() for w in re.split(r"[,\s]+", config.get(key, "")) if w.strip()}


def _startup_options(
    target: str,
    alias: DatabaseAlias,
    hosts: tuple[PgBouncerHost, ...],
    states: tuple[PgBouncerState, ...],
) -> Finding | None:
    raw = alias.options.get("options")
    if not isinstance(raw, str) or not raw.strip():
        return None
    names = {h.name for h in hosts}
    live = [s for s in states if s.host in names]
    tracked = set(PGBOUNCER_TRACKED_PARAMETERS)
    for state in live:
        tracked |= _listed(state.config, "track_extra_parameters")
    params = startup_parameters(raw)
    unsupported = [p for p in params if p.lower() not in tracked] or ([] if params else ["options"])
    if not unsupported:
        return None
    evidence: dict[str, Any] = {
        "options": raw,
        "unsupported_parameters": unsupported,
        "pgbouncers": sorted(names),
    }
    if live:
        ignored = {s.host: sorted(_listed(s.config, "ignore_startup_parameters")) for s in live}
        evidence["ignore_startup_parameters"] = ignored
        covers = all(
            "options" in lst or all(p.lower() in lst for p in unsupported) for lst in ignored.values()
        )
        severity = Severity.WARNING if covers else Severity.CRITICAL
        outcome = (
            "PgBouncer drops them silently: the settings are never applied"
            if covers
            else "PgBouncer refuses the connection ('unsupported startup parameter')"
        )
    else:
        severity = Severity.WARNING
        outcome = (
            "PgBouncer either refuses the connection or, when ignore_startup_parameters lists them, "
            "drops them silently"
        )
    user = alias.user or "<role>"
    return Finding(
        OPTIONS,
        severity,
        target,
        f"OPTIONS['options'] sets {', '.join(unsupported)} through PgBouncer: {outcome}",
        evidence,
        f"remove them from OPTIONS and set them on the role: ALTER ROLE {user} SET statement_timeout "
        "= '30s' (likewise for the others); new server connections pick it up",
    )


def _prepared_statements(
    target: str, alias: DatabaseAlias, pooled: tuple[PgBouncerHost, ...], states: tuple[PgBouncerState, ...]
) -> Finding | None:
    """psycopg prepares statements (prepare_threshold not None, or server-side binding) behind a
    transaction-mode PgBouncer that does not track them: the next EXECUTE lands on another server."""
    threshold = alias.options.get("prepare_threshold")  # absent: Django passes None (never prepare)
    binding = alias.options.get("server_side_binding") is True
    if threshold is None and not binding:
        return None
    live = {s.host: s for s in states}
    unsafe: dict[str, dict[str, Any]] = {}
    unread: list[str] = []
    for host in pooled:
        state = live.get(host.name)
        if state is None:
            unread.append(host.name)
            continue
        found = versions.parse_version(state.version)
        if found is None or found < PREPARED_STATEMENTS_SINCE or state.max_prepared_statements <= 0:
            unsafe[host.name] = {
                "version": state.version,
                "max_prepared_statements": state.max_prepared_statements,
            }
    if not unsafe and not unread:
        return None
    evidence: dict[str, Any] = {
        "prepare_threshold": threshold,
        "server_side_binding": binding,
        "pgbouncers": unsafe,
        "not_read": unread,
        "pool_modes": sorted({p.pool_mode.value for p in pooled}),
    }
    asks = [f"prepare_threshold {threshold}"] if threshold is not None else []
    asks += ["server_side_binding True"] if binding else []
    if unsafe:
        severity = Severity.CRITICAL
        why = (
            f"PgBouncer {', '.join(sorted(unsafe))} pools per transaction without tracking prepared "
            'statements (before 1.21, or max_prepared_statements 0): \'prepared statement "_pg3_0" does not '
            "exist' under load"
        )
    else:
        severity = Severity.WARNING
        why = f"doctor did not read PgBouncer {', '.join(unread)}: it cannot tell whether they track them"
    return Finding(
        PREPARED,
        severity,
        target,
        f"OPTIONS sets {' and '.join(asks)} behind transaction pooling; {why}",
        evidence,
        "remove prepare_threshold and server_side_binding from OPTIONS (Django's default never prepares); "
        "or run PgBouncer 1.21+ with max_prepared_statements above 0 (e.g. 200)",
    )

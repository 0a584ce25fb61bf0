"""PgBouncer: reachable, clients not waiting, pools not exhausted, live config equal to the plan."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolkit.domain import versions
from toolkit.domain.checks import pgbouncer_peers
from toolkit.domain.checks.base import CheckInfo, unreachable
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.numbers import as_int
from toolkit.domain.plan import PGBOUNCER_SIZED_SETTINGS
from toolkit.domain.snapshot import PgBouncerState, Snapshot

AREA = "pgbouncer"
_P = "pgbouncer."
CATALOG = (
    CheckInfo(_P + "unreachable", "doctor could not read the admin console", "pgbouncer-unresponsive"),
    CheckInfo(_P + "clients_waiting", "clients wait for a server connection", "terminate-idle-transactions"),
    CheckInfo(
        _P + "pool_exhausted",
        "every server connection of a pool is busy and clients queue",
        "terminate-idle-transactions",
    ),
    CheckInfo(
        _P + "max_client_conn_near_limit",
        "client connections approach max_client_conn",
        "pgbouncer-raise-max-client-conn",
    ),
    CheckInfo(_P + "config_drift", "live settings differ from the plan", "pgbouncer-reload"),
    CheckInfo(_P + "version_outdated", "PgBouncer is older than the security floor"),
    *pgbouncer_peers.CATALOG,
)

WAIT_WARNING_S = 1.0  # a client waited this long for a server connection
WAIT_CRITICAL_S = 5.0
CLIENTS_WARNING = 0.8  # share of max_client_conn in use
CLIENTS_CRITICAL = 0.95
PREPARED_STATEMENTS = (1, 21, 0)  # max_prepared_statements: prepared statements in transaction mode


def run(snap: Snapshot) -> list[Finding]:
    """Return the pgbouncer.* findings."""
    out = unreachable(
        snap,
        "pgbouncer",
        "check the service and the network path; toolkit runbook show pgbouncer-unresponsive",
        "pgbouncer-unresponsive",
    )
    planned: Mapping[str, Any] = snap.plan.to_dict()["pgbouncer"] if snap.plan else {}
    for state in snap.pgbouncer:
        out += _waiting(state)
        out += _clients(state)
        if state.host in planned:
            out += _drift(state, planned[state.host])
        out += _version(state, snap.acknowledged_cves.get(state.host, frozenset()))
    return out + pgbouncer_peers.run(snap)


def _holders(state: PgBouncerState, database: str, user: str) -> list[str]:
    """Client addresses and application names holding server connections of a pool."""
    linked = {
        s.link for s in state.servers if s.database == database and s.user == user and s.state == "active"
    }
    return sorted(
        {f"{c.addr}:{c.port} {c.application_name}".strip() for c in state.clients if c.ptr in linked}
    )


def _waiting(state: PgBouncerState) -> list[Finding]:
    out: list[Finding] = []
    sizes = {d.name: d.pool_size + d.reserve_pool_size for d in state.databases}
    for pool in state.pools:
        if pool.database == "pgbouncer" or pool.cl_waiting == 0:
            continue
        target = f"pgbouncer@{state.address}"
        evidence = {
            "database": pool.database,
            "user": pool.user,
            "cl_waiting": pool.cl_waiting,
            "cl_active": pool.cl_active,
            "sv_active": pool.sv_active,
            "sv_idle": pool.sv_idle,
            "maxwait_s": round(pool.maxwait_seconds, 3),
        }
        size = sizes.get(pool.database, 0)
        if size and pool.sv_active >= size:
            evidence["pool_size_with_reserve"] = size
            evidence["holders"] = _holders(state, pool.database, pool.user)[:10]
            out.append(
                Finding(
                    _P + "pool_exhausted",
                    Severity.CRITICAL,
                    target,
                    f"pool {pool.database}/{pool.user}: all {size} server connections busy, "
                    f"{pool.cl_waiting} "
                    f"client(s) queued",
                    evidence,
                    "find who holds the connections (postgres.idle_in_transaction), end them, then fix "
                    "the app; raise the pool only within the budget",
                    "terminate-idle-transactions",
                )
            )
        if pool.maxwait_seconds >= WAIT_WARNING_S:
            sev = Severity.CRITICAL if pool.maxwait_seconds >= WAIT_CRITICAL_S else Severity.WARNING
            out.append(
                Finding(
                    _P + "clients_waiting",
                    sev,
                    target,
                    f"pool {pool.database}/{pool.user}: {pool.cl_waiting} client(s) waiting, the oldest for "
                    f"{pool.maxwait_seconds:.1f} s",
                    evidence,
                    "look for sessions holding connections (idle in transaction, long queries) and end "
                    "them; check the pool against the plan",
                    "terminate-idle-transactions",
                )
            )
    return out


def _clients(state: PgBouncerState) -> list[Finding]:
    limit = as_int(state.config.get("max_client_conn"))
    used = sum(1 for c in state.clients if c.database != "pgbouncer")
    if not limit or used < limit * CLIENTS_WARNING:
        return []
    sev = Severity.CRITICAL if used >= limit * CLIENTS_CRITICAL else Severity.WARNING
    return [
        Finding(
            _P + "max_client_conn_near_limit",
            sev,
            f"pgbouncer@{state.address}",
            f"{used} of max_client_conn {limit} client connections in use ({used / limit:.0%})",
            {"clients": used, "max_client_conn": limit},
            "look for a connection leak (topology.client_count_drift); "
            "raise the topology in the inventory if real",
            "pgbouncer-raise-max-client-conn",
        )
    ]


def _drift(state: PgBouncerState, planned: Mapping[str, Any]) -> list[Finding]:
    expected = {**planned["settings"], "pool_mode": planned["pool_mode"]}
    names = [*PGBOUNCER_SIZED_SETTINGS, "pool_mode"]
    differ = {
        n: {"planned": expected[n], "live": state.config.get(n)}
        for n in names
        if n in state.config and str(state.config[n]) != str(expected[n])
    }
    if not differ:
        return []
    listed = ", ".join(f"{n} {d['live']} (plan {d['planned']})" for n, d in differ.items())
    return [
        Finding(
            _P + "config_drift",
            Severity.WARNING,
            f"pgbouncer@{state.address}",
            f"live settings differ from the plan: {listed}",
            differ,
            "re-run the playbook (a live SET is reverted by RELOAD); "
            "or change the inventory if the live value is right",
            "pgbouncer-reload",
        )
    ]


def _version(state: PgBouncerState, acknowledged: frozenset[str]) -> list[Finding]:
    found = versions.parse_version(state.version)
    if found is None:
        return []
    open_cves = versions.affecting("pgbouncer", found, acknowledged)
    if not open_cves:
        return []
    floor = versions.floor("pgbouncer")
    bypass = [a.cve for a in open_cves if a.kind.startswith(versions.AUTH_BYPASS)]
    extra = "" if found >= PREPARED_STATEMENTS else "; it also lacks max_prepared_statements (1.21+)"
    shown = ".".join(map(str, found))
    if bypass:
        summary = f"PgBouncer {shown} has an authentication bypass ({', '.join(bypass)}): upgrade to {floor}+"
    else:
        summary = f"{state.version} is older than the security floor {floor}"
    return [
        Finding(
            _P + "version_outdated",
            Severity.CRITICAL if bypass else Severity.WARNING,
            f"pgbouncer@{state.address}",
            f"{summary} ({len(open_cves)} fixed CVE(s) open){extra}",
            {
                "version": shown,
                "security_floor": floor,
                "cves": {a.cve: f"{a.kind}; fixed in {a.fixed_in}" for a in open_cves},
                "acknowledged": sorted(acknowledged),
                "prepared_statements": found >= PREPARED_STATEMENTS,
            },
            f"install PgBouncer {floor}+ (pgbouncer_apt_repository); a CVE the distribution's build "
            f"fixes goes in {versions.ACK_VARIABLE} of host {state.host}",
        )
    ]

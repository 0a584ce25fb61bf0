"""Capacity: does the topology fit the database, the poolers' client limits and their file limits?

Works offline (from the inventory and its plan) and, where live data exists, against live values.
"""

from __future__ import annotations

import math

from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.errors import SizingError, SizingKind
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import PoolMode
from toolkit.domain.numbers import as_int
from toolkit.domain.sizing import route_demand
from toolkit.domain.snapshot import Snapshot

AREA = "capacity"
_P = "capacity."
CATALOG = (
    CheckInfo(
        _P + "server_connections_exceed_db",
        "PgBouncer may open more server connections than PostgreSQL has",
        "pgbouncer-resize-pool",
    ),
    CheckInfo(
        _P + "client_demand_exceeds_max_client_conn",
        "more clients are routed to a PgBouncer than it admits",
        "pgbouncer-raise-max-client-conn",
    ),
    CheckInfo(
        _P + "session_mode_pool_too_small",
        "a session-mode pool is smaller than its clients",
        "pgbouncer-resize-pool",
    ),
    CheckInfo(_P + "no_failover_headroom", "a shared PgBouncer tier cannot lose a host"),
    CheckInfo(_P + "fd_limit_too_low", "a PgBouncer's open-files limit is below what its limits need"),
)
_RUNBOOK = {c.id: c.runbook for c in CATALOG}
# Every sizing rule's finding (a unit test checks that each SizingKind has one).
_KIND_TO_ID = {
    SizingKind.BUDGET: "server_connections_exceed_db",
    SizingKind.OVERRIDE: "server_connections_exceed_db",
    SizingKind.ROUTING: "server_connections_exceed_db",
    SizingKind.SESSION: "session_mode_pool_too_small",
    SizingKind.CLIENT_CONN: "client_demand_exceeds_max_client_conn",
    SizingKind.HEADROOM: "no_failover_headroom",
}


def run(snap: Snapshot) -> list[Finding]:
    """Return the capacity.* findings."""
    out: list[Finding] = []
    if snap.plan_error is not None:
        kind = snap.plan_error.kind
        fid = _P + _KIND_TO_ID[kind]
        out.append(
            Finding(
                fid,
                Severity.CRITICAL,
                "inventory",
                str(snap.plan_error).strip(),
                {"rule": str(kind)},
                "change the inventory as the summary says, then re-run toolkit plan",
                _RUNBOOK[fid],
            )
        )
    out += _headroom(snap)
    out += _live_db_capacity(snap)
    out += _live_client_limits(snap)
    return out


def _headroom(snap: Snapshot) -> list[Finding]:
    topo = snap.topology
    if len(topo.pgbouncers) < 2 or topo.failover_headroom > 0:
        return []
    shared = [n.name for n in topo.app_nodes if len(n.pgbouncer_hosts or topo.pgbouncers) > 1]
    if not shared:
        return []
    return [
        Finding(
            _P + "no_failover_headroom",
            Severity.WARNING,
            "inventory",
            f"{len(shared)} app node(s) share {len(topo.pgbouncers)} PgBouncer hosts sized with no headroom: "
            "losing one host overloads the others",
            {"pgbouncer_hosts": len(topo.pgbouncers), "shared_nodes": shared, "failover_headroom": 0},
            "set pgbouncer_failover_headroom: 1 (N+1) and re-deploy",
        )
    ]


def _live_db_capacity(snap: Snapshot) -> list[Finding]:
    if snap.postgres is None or snap.plan is None:
        return []
    live = as_int(snap.postgres.settings.get("max_connections"))
    reserved = as_int(snap.postgres.settings.get("superuser_reserved_connections"))
    reserved += as_int(snap.postgres.settings.get("reserved_connections"))
    # RDS and Aurora keep slots for rds_superuser members too (absent elsewhere).
    reserved += as_int(snap.postgres.settings.get("rds.rds_superuser_reserved_connections"))
    need = snap.plan.budget.pgbouncer_server_connections + snap.topology.database.bypass_total + reserved
    if live >= need:
        return []
    return [
        Finding(
            _P + "server_connections_exceed_db",
            Severity.CRITICAL,
            f"postgres@{snap.postgres.address}",
            f"PgBouncer may open {snap.plan.budget.pgbouncer_server_connections} server connections, plus "
            f"{snap.topology.database.bypass_total} bypass and {reserved} reserved = {need}, "
            "but PostgreSQL's "
            f"max_connections is {live}",
            {
                "max_connections": live,
                "needed": need,
                "inventory_max_connections": snap.plan.budget.max_connections,
            },
            "set database_max_connections to the live value and re-deploy, or raise max_connections",
            _RUNBOOK[_P + "server_connections_exceed_db"],
        )
    ]


def _live_client_limits(snap: Snapshot) -> list[Finding]:
    out: list[Finding] = []
    if not snap.pgbouncer:
        return out
    try:
        routed = route_demand(snap.topology)
    except SizingError:  # an infeasible routing is already reported from the plan error
        return out
    hosts = {h.name: h for h in snap.topology.pgbouncers}
    for state in snap.pgbouncer:
        host = hosts.get(state.host)
        if host is None:
            continue
        target = f"pgbouncer@{state.address}"
        max_client = as_int(state.config.get("max_client_conn"))
        need = routed[host.name] + host.admin_slots
        if max_client < need:
            out.append(
                Finding(
                    _P + "client_demand_exceeds_max_client_conn",
                    Severity.CRITICAL,
                    target,
                    f"{routed[host.name]} clients are routed here plus {host.admin_slots} admin slots "
                    f"= {need}, "
                    f"but max_client_conn is {max_client}: new connections will be refused",
                    {"max_client_conn": max_client, "routed_clients": routed[host.name], "needed": need},
                    "re-deploy with the planned max_client_conn",
                    _RUNBOOK[_P + "client_demand_exceeds_max_client_conn"],
                )
            )
        per_process = math.ceil(routed[host.name] / host.processes)
        pool = as_int(state.config.get("default_pool_size"))
        if state.config.get("pool_mode") == PoolMode.SESSION.value and 0 < pool < per_process:
            out.append(
                Finding(
                    _P + "session_mode_pool_too_small",
                    Severity.CRITICAL,
                    target,
                    f"session mode holds a server connection per client: {per_process} clients per process, "
                    f"default_pool_size {pool}; the rest wait until a session ends",
                    {"default_pool_size": pool, "clients_per_process": per_process},
                    "use transaction mode, or re-deploy with the planned pool",
                    _RUNBOOK[_P + "session_mode_pool_too_small"],
                )
            )
        if state.fd_limit is not None:
            need_fd = max_client + host.pools * (pool + as_int(state.config.get("reserve_pool_size")))
            if state.fd_limit < need_fd:
                out.append(
                    Finding(
                        _P + "fd_limit_too_low",
                        Severity.WARNING,
                        target,
                        f"open-files limit {state.fd_limit} is below max_client_conn {max_client} + server "
                        f"connections = {need_fd}",
                        {"fd_limit": state.fd_limit, "needed": need_fd},
                        "raise LimitNOFILE (systemd) or ulimit -n to the plan's nofile and restart PgBouncer",
                    )
                )
    return out

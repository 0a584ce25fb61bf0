"""PostgreSQL: slots in use, sessions that hold connections, and who holds them.

Attribution follows a backend to the app node that holds it: pg_stat_activity.pid is a PgBouncer
server's remote_pid; that server's link is a client's ptr; the client's address is an app node's.
"""

from __future__ import annotations

from toolkit.domain.checks.base import CheckInfo, unreachable
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.numbers import as_int
from toolkit.domain.snapshot import Backend, Snapshot

AREA = "postgres"
_P = "postgres."
CATALOG = (
    CheckInfo(_P + "unreachable", "doctor could not read PostgreSQL"),
    CheckInfo(
        _P + "connections_near_limit",
        "connections approach the slots ordinary roles may use",
        "end-bypass-sessions",
    ),
    CheckInfo(
        _P + "idle_in_transaction",
        "sessions sit idle inside a transaction, holding a connection",
        "terminate-idle-transactions",
    ),
    CheckInfo(_P + "long_running_transaction", "a transaction has been open for long", "cancel-long-queries"),
    CheckInfo(_P + "long_running_query", "a query has been running for long", "cancel-long-queries"),
    CheckInfo(
        _P + "blocked_by_lock", "sessions wait for a lock another session holds", "cancel-long-queries"
    ),
    CheckInfo(_P + "no_idle_in_transaction_timeout", "idle_in_transaction_session_timeout is off"),
    CheckInfo(
        _P + "connections_bypass_pgbouncer",
        "app roles connect to PostgreSQL without PgBouncer",
        "end-bypass-sessions",
    ),
    CheckInfo(_P + "max_connections_drift", "the live max_connections is not the inventory's"),
    CheckInfo(_P + "reserved_connections_drift", "the live reserved slots are not the inventory's"),
)
# Slots RDS and Aurora keep for rds_superuser members; the inventory counts them in
# database_reserved_connections (docs/managed-databases.md). Absent elsewhere.
RDS_RESERVED = "rds.rds_superuser_reserved_connections"

SLOTS_WARNING, SLOTS_CRITICAL = 0.8, 0.95
IDLE_XACT_WARNING_S, IDLE_XACT_CRITICAL_S = 10.0, 60.0
XACT_WARNING_S, XACT_CRITICAL_S = 60.0, 300.0
QUERY_WARNING_S, QUERY_CRITICAL_S = 30.0, 300.0
LOCK_WARNING_S, LOCK_CRITICAL_S = 5.0, 60.0
IDLE_STATES = ("idle in transaction", "idle in transaction (aborted)")


def run(snap: Snapshot) -> list[Finding]:
    """Return the postgres.* findings."""
    out = unreachable(snap, "postgres", "check the server and the monitoring role")
    pg = snap.postgres
    if pg is None:
        return out
    target = f"postgres@{pg.address}"
    clients = [b for b in pg.backends if b.backend_type == "client backend"]
    out += _slots(snap, target, clients)
    owners = attribution(snap)
    for b in clients:
        who = owners.get(b.pid, {})
        idle = b.state in IDLE_STATES and b.state_age is not None and b.state_age >= IDLE_XACT_WARNING_S
        if idle and b.state_age is not None:
            out.append(
                _session(
                    _P + "idle_in_transaction",
                    b,
                    b.state_age,
                    IDLE_XACT_CRITICAL_S,
                    target,
                    who,
                    f"{b.state} for {b.state_age:.0f} s",
                    "end it (runbook), then fix the code path that leaves transactions open",
                    "terminate-idle-transactions",
                )
            )
        if b.state == "active" and b.query_age is not None and b.query_age >= QUERY_WARNING_S:
            out.append(
                _session(
                    _P + "long_running_query",
                    b,
                    b.query_age,
                    QUERY_CRITICAL_S,
                    target,
                    who,
                    f"query running for {b.query_age:.0f} s",
                    "cancel it; add an index or a statement_timeout for the role",
                    "cancel-long-queries",
                )
            )
        # Reported on its own: a long transaction may be sampled between two statements, or run a short
        # query late in a long transaction. Not when an idle-in-transaction finding covers it, nor when
        # the running query started with the transaction (long_running_query says it already).
        whole = b.state == "active" and (b.xact_age or 0) - (b.query_age or 0) < 1.0
        if not idle and not whole and b.xact_age is not None and b.xact_age >= XACT_WARNING_S:
            out.append(
                _session(
                    _P + "long_running_transaction",
                    b,
                    b.xact_age,
                    XACT_CRITICAL_S,
                    target,
                    who,
                    f"transaction open for {b.xact_age:.0f} s",
                    "cancel it; keep transactions short",
                    "cancel-long-queries",
                )
            )
        if b.blocked_by and b.wait_event_type == "Lock" and (b.query_age or 0) >= LOCK_WARNING_S:
            out.append(
                _session(
                    _P + "blocked_by_lock",
                    b,
                    b.query_age or 0,
                    LOCK_CRITICAL_S,
                    target,
                    who,
                    f"waiting {b.query_age or 0:.0f} s for a lock held by pid(s) "
                    f"{', '.join(map(str, b.blocked_by))}",
                    "end or finish the blocking session",
                    "cancel-long-queries",
                )
            )
    if pg.settings.get("idle_in_transaction_session_timeout", "0") in ("0", ""):
        out.append(
            Finding(
                _P + "no_idle_in_transaction_timeout",
                Severity.WARNING,
                target,
                "idle_in_transaction_session_timeout is 0: a session left idle in a transaction holds "
                "its connection (and in transaction pooling, a PgBouncer server) forever",
                {"idle_in_transaction_session_timeout": 0},
                "ALTER ROLE app SET idle_in_transaction_session_timeout = '60s' (or set it server-wide)",
            )
        )
    out += _bypass(snap, target, clients)
    out += drift(snap, target)
    return out


def _session(
    fid: str,
    b: Backend,
    age: float,
    critical: float,
    target: str,
    who: dict[str, str],
    what: str,
    remedy: str,
    runbook: str,
) -> Finding:
    node = who.get("app_node")
    holder = f" held by app node {node}" if node else ""
    app = f" ({b.application_name})" if b.application_name else ""
    return Finding(
        fid,
        Severity.CRITICAL if age >= critical else Severity.WARNING,
        target,
        f"pid {b.pid} {b.usename}@{b.datname}{app}: {what}{holder}",
        {
            "pid": b.pid,
            "user": b.usename,
            "database": b.datname,
            "state": b.state,
            "age_s": round(age, 1),
            "application_name": b.application_name,
            "client_addr": b.client_addr,
            **who,
            "query": b.query[:120],
        },
        remedy,
        runbook,
    )


def attribution(snap: Snapshot) -> dict[int, dict[str, str]]:
    """Map backend pids to the PgBouncer client, its address and app node, where PgBouncer holds them."""
    by_addr: dict[str, list[str]] = {}
    for node in snap.topology.app_nodes:
        by_addr.setdefault(node.address or node.name, []).append(node.name)
    out: dict[int, dict[str, str]] = {}
    for state in snap.pgbouncer:
        clients = {c.ptr: c for c in state.clients}
        for server in state.servers:
            client = clients.get(server.link) if server.link else None
            if not server.remote_pid:
                continue
            entry = {"pgbouncer": state.address}
            if client is not None:
                entry["client"] = f"{client.addr}:{client.port}"
                if client.application_name:
                    entry["client_application_name"] = client.application_name
                nodes = by_addr.get(client.addr)
                if nodes and client.application_name in nodes:
                    # Several nodes behind one address (NAT, one host): the app names itself.
                    entry["app_node"] = client.application_name
                elif nodes:
                    entry["app_node"] = " or ".join(nodes)
            out[server.remote_pid] = entry
    return out


def _slots(snap: Snapshot, target: str, clients: list[Backend]) -> list[Finding]:
    settings = snap.postgres.settings if snap.postgres else {}
    total = as_int(settings.get("max_connections"))
    reserved = as_int(settings.get("superuser_reserved_connections"))
    reserved += as_int(settings.get("reserved_connections"))
    usable = total - reserved
    if usable <= 0 or len(clients) < usable * SLOTS_WARNING:
        return []
    sev = Severity.CRITICAL if len(clients) >= usable * SLOTS_CRITICAL else Severity.WARNING
    return [
        Finding(
            _P + "connections_near_limit",
            sev,
            target,
            f"{len(clients)} client connections of {usable} usable ({total} max_connections - "
            f"{reserved} reserved)",
            {"connections": len(clients), "usable": usable, "max_connections": total, "reserved": reserved},
            "find who holds them (idle in transaction, bypassing clients); size pools with toolkit plan",
            "end-bypass-sessions",
        )
    ]


def _bypass(snap: Snapshot, target: str, clients: list[Backend]) -> list[Finding]:
    if not snap.pgbouncer or any(t.kind == "pgbouncer" and not t.ok for t in snap.targets):
        return []  # without every PgBouncer's servers, a direct connection cannot be told apart
    pooled = {s.remote_pid for state in snap.pgbouncer for s in state.servers}
    app_users = {u for h in snap.topology.pgbouncers for u in h.users}
    direct = [b for b in clients if b.usename in app_users and b.pid not in pooled]
    if not direct:
        return []
    return [
        Finding(
            _P + "connections_bypass_pgbouncer",
            Severity.WARNING,
            target,
            f"{len(direct)} connection(s) of app roles reach PostgreSQL without PgBouncer",
            {
                "count": len(direct),
                "sessions": [
                    f"{b.pid} {b.usename} {b.client_addr} {b.application_name}" for b in direct[:10]
                ],
            },
            "point DATABASES at PgBouncer (django.bypasses_pgbouncer); budget real direct clients in "
            "database_bypass_connections",
            "end-bypass-sessions",
        )
    ]


def drift(snap: Snapshot, target: str) -> list[Finding]:
    """The live max_connections and reserved slots against the inventory the plan was sized from.

    Live lower than the inventory (or more reserved) means the plan counts slots PostgreSQL does not
    give: CRITICAL. Live higher (or fewer reserved) means the plan leaves slots unused: WARNING.
    """
    if snap.postgres is None:
        return []
    settings = snap.postgres.settings
    db = snap.topology.database
    live_max = as_int(settings.get("max_connections"), None)
    if live_max is None:
        return []
    out: list[Finding] = []
    if live_max != db.max_connections:
        lower = live_max < db.max_connections
        effect = (
            f"the plan counts {db.max_connections - live_max} slot(s) PostgreSQL does not have"
            if lower
            else f"the plan leaves {live_max - db.max_connections} slot(s) unused"
        )
        out.append(
            Finding(
                _P + "max_connections_drift",
                Severity.CRITICAL if lower else Severity.WARNING,
                target,
                f"max_connections is {live_max} live, {db.max_connections} in the inventory: {effect}",
                {"max_connections": live_max, "inventory_max_connections": db.max_connections},
                f"set database_max_connections: {live_max} in the inventory (SHOW max_connections) and "
                f"re-deploy so the pools are re-sized, or set the server back to {db.max_connections}",
            )
        )
    live_su = as_int(settings.get("superuser_reserved_connections"), None)
    live_su = db.superuser_reserved_connections if live_su is None else live_su
    # reserved_connections exists from PostgreSQL 16; on RDS/Aurora its own slots add to it.
    live_reserved = as_int(settings.get("reserved_connections")) + as_int(settings.get(RDS_RESERVED))
    inv_su, inv_reserved = db.superuser_reserved_connections, db.reserved_connections
    if (live_su, live_reserved) == (inv_su, inv_reserved):
        return out
    live_total, inv_total = live_su + live_reserved, inv_su + inv_reserved
    parts = [
        f"{name} {live} live, {inv} in the inventory"
        for name, live, inv in (
            ("superuser_reserved_connections", live_su, inv_su),
            (
                "reserved_connections" + (f" + {RDS_RESERVED}" if RDS_RESERVED in settings else ""),
                live_reserved,
                inv_reserved,
            ),
        )
        if live != inv
    ]
    if live_total > inv_total:
        effect = f"the plan counts {live_total - inv_total} reserved slot(s) as usable"
    elif live_total < inv_total:
        effect = f"the plan leaves {inv_total - live_total} slot(s) unused"
    else:
        effect = "the budget is unchanged, but the inventory names the wrong settings"
    out.append(
        Finding(
            _P + "reserved_connections_drift",
            Severity.CRITICAL if live_total > inv_total else Severity.WARNING,
            target,
            f"{'; '.join(parts)}: {effect}",
            {
                "superuser_reserved_connections": live_su,
                "inventory_superuser_reserved_connections": inv_su,
                "reserved_connections": live_reserved,
                "inventory_reserved_connections": inv_reserved,
            },
            "set database_superuser_reserved_connections and database_reserved_connections to the live "
            f"values (SHOW superuser_reserved_connections, reserved_connections and, on RDS, {RDS_RESERVED}) "
            "and re-deploy",
        )
    )
    return out

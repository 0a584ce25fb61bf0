"""Drill ``pool-exhaustion``: a view that keeps its transaction open while it waits holds the pool.

The app nodes reach the PgBouncer tier through libpq multi-host: a client that one PgBouncer host
refuses (max_client_conn) moves on to the next. So the incident on the fleet is the whole tier's pools
held: for each PgBouncer host, an extra instance of the WSGI node on its host (the node scaled out
past its plan: one gunicorn process, one thread per holder, its database that PgBouncer host alone)
calls ``/idle-transaction/`` (a query, then a long wait inside the transaction) until every server
connection of that host's pools, reserve included, is idle in transaction and more clients queue.
The ASGI node's ordinary list view is measured from this machine before, during and after; doctor
must name the holders and the node, and ``terminate-idle-transactions`` must restore throughput.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from typing import Any

from lab.drills.harness import Lab, extra_instances, finding_ids, toolkit, wait_for
from lab.drills.http_load import load, request
from lab.drills.report import DrillReport, ratio
from toolkit.adapters.errors import TargetError

NAME = "pool-exhaustion"
TITLE = "connections held idle in transaction exhaust the pool"
HOLD_MS = 90_000  # longer than detection and remediation; shorter than the lab's 300 s timeout
EXTRA_PORT = 8101  # the first extra instance (one per PgBouncer host): the lab's own node stays usable
WAITERS = 2  # holders beyond a host's server connections: they queue in PgBouncer
ROOM = 2  # client slots per process left under max_client_conn for doctor's and the runbook's logins
# so_reuseport spreads clients over a host's processes unevenly: enough to fill each. With 1.5 and pools
# of 10, doctor once found 37 of the tier's 39 server connections held (a process short of holders, most
# likely; the next run held all 39).
SPREAD = 2.0


def holders_needed(lab: Lab) -> dict[str, tuple[int, int]]:
    """PgBouncer host -> (its server connections, the holders that fill them and queue more).

    From the plan (``toolkit plan --format json``): a host's server connections (pool + reserve, every
    process) plus WAITERS; for several processes SPREAD times the server connections, since the
    kernel, not PgBouncer, picks each client's process. Capped so that max_client_conn keeps ROOM
    slots per process for the admin console: the clients over it would be refused, not queued.
    """
    _, doc = toolkit(["plan", "-i", lab.inventory, "--format", "json"])
    needed = {}
    for host, sized in doc["pgbouncer"].items():
        servers, processes = int(sized["server_connections"]), int(sized.get("processes", 1))
        limit = (int(sized["settings"]["max_client_conn"]) - ROOM) * processes
        want = servers + WAITERS if processes == 1 else math.ceil(servers * SPREAD) + WAITERS
        needed[host] = (servers, min(want, limit))
    return needed


def _hold(url: str) -> None:
    # A holder whose session was terminated gets an error: that is the remedy working.
    with contextlib.suppress(TargetError):
        request(url, timeout=HOLD_MS / 1000 + 30)


def _detected(lab: Lab, node: str, servers: int, seen: dict[str, Any]) -> dict[str, Any] | None:
    code, doc = toolkit(["doctor", "-i", lab.inventory, "--format", "json", "--timeout", "5"])
    ids = finding_ids(doc)
    idle = [
        f
        for f in doc.get("findings", [])
        if f["id"] == "postgres.idle_in_transaction" and f.get("evidence", {}).get("app_node") == node
    ]
    seen.update(
        last_exit=code,
        last_ids=sorted(set(ids)),
        last_idle_of_node=len(idle),
        unreachable=[t["address"] for t in doc.get("targets", []) if not t.get("ok")],
    )
    # Every server connection held by the node, and clients queued behind them.
    if len(idle) >= servers and "pgbouncer.clients_waiting" in ids:
        return {"ids": sorted(set(ids)), "idle_sessions_of_node": len(idle)}
    return None


RECONNECT_WARMUP_S = 2.0


def _settled(lab: Lab, node: str) -> bool:
    """Doctor reports no client waiting and none of ``node``'s sessions idle in transaction."""
    _, doc = toolkit(["doctor", "-i", lab.inventory, "--format", "json", "--timeout", "5"])
    return not any(
        f["id"] == "pgbouncer.clients_waiting"
        or (f["id"] == "postgres.idle_in_transaction" and f.get("evidence", {}).get("app_node") == node)
        for f in doc.get("findings", [])
    )


def run(lab: Lab, seconds: float) -> DrillReport:
    """Inject, detect, remediate, verify; return the report."""
    report = DrillReport(NAME, TITLE)
    sick, healthy = lab.node("wsgi"), lab.node("asgi")
    probe = f"{healthy.url}/books/"
    needed = holders_needed(lab)
    unknown = sorted(set(needed) - set(lab.pgbouncers))
    if unknown:
        raise TargetError(
            lab.inventory, "the PgBouncer tier", f"no address for {', '.join(unknown)}", "hosts.yml"
        )
    servers = sum(s for s, _ in needed.values())
    report.measurements["holders"] = {
        "by_pgbouncer": {h: {"server_connections": s, "requests": n} for h, (s, n) in needed.items()},
        "server_connections": servers,
        "hold_ms": HOLD_MS,
    }
    before = load(probe, 8, seconds)
    report.measurements["before"] = before.to_dict()
    # One gunicorn process with a thread per holder, so exactly that many requests reach the host's
    # PgBouncer (several gthread processes would spread them unevenly), and only that host's.
    ports = {host: EXTRA_PORT + i for i, host in enumerate(needed)}
    scaled = {"server": "wsgi_gthread", "workers": 1}
    by_port = {
        ports[h]: {"threads": n, "database": {"host": lab.pgbouncers[h]}} for h, (_, n) in needed.items()
    }
    specs = [(sick, port) for port in ports.values()]
    with extra_instances(lab, specs, overrides=scaled, by_port=by_port, wait_s=120) as urls:
        started = time.monotonic()
        for url, (_, holders) in zip(urls, needed.values(), strict=True):
            for _ in range(holders):
                threading.Thread(
                    target=_hold, args=(f"{url}/idle-transaction/?ms={HOLD_MS}",), daemon=True
                ).start()
        seen: dict[str, Any] = {}
        took, found = wait_for(
            lambda: _detected(lab, sick.name, servers, seen), deadline_s=60, interval_s=0.5
        )
        report.detection = {
            "tool": "toolkit doctor",
            "seconds_from_injection": None if took is None else round(time.monotonic() - started, 1),
            **(found or {"not_found": seen}),
        }
        during = load(probe, 8, seconds)
        report.measurements["during"] = during.to_dict()
        code, outcome = toolkit(
            [
                "runbook",
                "run",
                "terminate-idle-transactions",
                "-i",
                lab.inventory,
                "--older-than",
                "5s",
                "--app-node",
                sick.name,
                # The runbook refuses to end more than 50 sessions at once: the drill held this many.
                "--max",
                str(servers + WAITERS * len(needed)),
                "--yes",
                "--format",
                "json",
            ]
        )
        report.remediation = {
            "command": "toolkit runbook run terminate-idle-transactions --older-than 5s "
            f"--app-node {sick.name} --max {servers + WAITERS * len(needed)} --yes",
            "exit": code,
            "sessions_ended": len(outcome.get("results", [])),
            "verified": outcome.get("verified"),
            "verification": outcome.get("verification"),
        }
        # Requests the app queued in PgBouncer during the fault run once the pool frees, and the first
        # new ones pay for reopening the server connections the runbook ended: "after" starts once
        # doctor sees no client waiting and none of the node's sessions idle in transaction, after a
        # short load that is not counted, so it measures the recovered tier, not its catching up.
        settled, _ = wait_for(lambda: _settled(lab, sick.name), deadline_s=60, interval_s=1.0)
        report.remediation["seconds_until_doctor_clear"] = None if settled is None else round(settled, 1)
        load(probe, 8, RECONNECT_WARMUP_S)
        after = load(probe, 8, seconds)
        report.measurements["after"] = after.to_dict()
    report.claim(
        f"doctor reports postgres.idle_in_transaction on every server connection of the tier, held by "
        f"{sick.name}, and pgbouncer.clients_waiting",
        took is not None,
        f"not within 60 s; last doctor run: {seen}"
        if took is None
        else f"{report.detection['seconds_from_injection']} s after injection, "
        f"{report.detection['idle_sessions_of_node']} sessions of {sick.name} idle in transaction",
    )
    report.claim(
        f"the tier's pools are exhausted: {healthy.name}'s successful throughput falls below half",
        ratio(during.ok_rps, before.ok_rps) < 0.5,
        f"{during.ok_rps:.0f} req/s during vs {before.ok_rps:.0f} before "
        f"({ratio(during.ok_rps, before.ok_rps):.2f}x)",
    )
    ended = report.remediation["sessions_ended"]
    report.claim(
        f"the runbook ended {sick.name}'s idle transactions and verified its effect",
        code == 0 and ended > 0 and outcome.get("verified") is True,
        f"exit {code}, {ended} session(s) ended, verified {outcome.get('verified')}",
    )
    report.claim(
        "successful throughput recovers to at least 60% of before",
        ratio(after.ok_rps, before.ok_rps) >= 0.6,
        f"{after.ok_rps:.0f} req/s after vs {before.ok_rps:.0f} before "
        f"({ratio(after.ok_rps, before.ok_rps):.2f}x)",
    )
    return report

"""Runbook snapshot: one JSON bundle of the live state for the postmortem, secrets masked, mode 0600.

Every SHOW output of every PgBouncer (as the read-only stats user), pg_stat_activity and its lock
waits, Redis INFO, and doctor's findings. Nothing on any server changes; the one action is writing the
file, which is audited like any other.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from toolkit import gather
from toolkit.adapters.errors import TargetError
from toolkit.adapters.files import write_atomic
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget
from toolkit.adapters.secrets import ENV
from toolkit.domain.checks import run_checks
from toolkit.domain.findings import worst
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.processes import selected_processes
from toolkit.domain.runbooks.snapshot import mask, plan_snapshot
from toolkit.domain.sizing import plan_or_error
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "snapshot",
    "Write every SHOW output, sessions, lock waits, Redis INFO and doctor's findings to one JSON file",
    params=("-o/--output", "--target", "--timeout"),
)
SHOW = (
    "VERSION",
    "CONFIG",
    "DATABASES",
    "POOLS",
    "CLIENTS",
    "SERVERS",
    "STATS",
    "STATS_TOTALS",
    "STATS_AVERAGES",
    "LISTS",
    "USERS",
    "MEM",
    "DNS_HOSTS",
    "DNS_ZONES",
    "SOCKETS",
)


def _sources(ctx: RunContext) -> list[str]:
    return [e.label for e in ctx.endpoints if ctx.target in (None, e.name, e.address) or e.kind == "postgres"]


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Plan writing the bundle to -o FILE."""
    return plan_snapshot(opts.output, _sources(ctx))


def _show_all(target: AdminTarget, timeout: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        with AdminConsole(target, timeout) as console:
            for name in SHOW:
                try:
                    out[name] = console.rows(f"SHOW {name}")
                except TargetError as exc:
                    out[name] = {"error": str(exc)}
    except TargetError as exc:
        out["error"] = str(exc)
    return out


def collect(ctx: RunContext) -> dict[str, Any]:
    """Everything the bundle holds, unmasked (masked by :func:`act` before writing)."""
    eps = tuple(e for e in ctx.endpoints if ctx.target in (None, e.name, e.address) or e.kind == "postgres")
    sizing, sizing_error = plan_or_error(ctx.topology)
    snap = gather.snapshot(ctx.topology, sizing, sizing_error, eps, ctx.secrets, ctx.timeout)
    findings = run_checks(snap)
    stats_password = ctx.secrets.password("pgbouncer") or ""
    processes = {h.name: h.processes for h in ctx.topology.pgbouncers}
    targets = [  # every process of a host that runs several: each has its own pools and clients
        AdminTarget(e.address, e.port, e.user, stats_password, e.name, number)
        for e in eps
        if e.kind == "pgbouncer"
        for number in selected_processes(e.name, processes.get(e.name, 1), None)
    ]
    pgbouncers = {t.label: _show_all(t, ctx.timeout) for t in targets}
    backends = [asdict(b) for b in snap.postgres.backends] if snap.postgres else []
    return {
        "schema": "toolkit.snapshot/v1",
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
        "inventory": ctx.data.source,
        "targets": [asdict(t) for t in snap.targets],
        "pgbouncer": pgbouncers,
        "postgres": {
            "settings": dict(snap.postgres.settings) if snap.postgres else {},
            "pg_stat_activity": backends,
            "lock_waits": [b for b in backends if b["blocked_by"]],
        },
        "redis": {r.host: {"address": r.address, "info": r.info, "config": r.config} for r in snap.redis},
        "doctor": {"status": worst(findings).label, "findings": [f.to_dict() for f in findings]},
    }


def _secrets(ctx: RunContext) -> list[str]:
    return [p for p in (ctx.secrets.password(kind) for kind in ENV) if p]


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """Collect, mask, and write the file atomically with mode 0600."""
    path = Path(str(action.args["file"]))
    bundle = mask(collect(ctx), _secrets(ctx))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(bundle, indent=2, default=str) + "\n", mode=0o600)
    return f"wrote {path} ({path.stat().st_size} bytes, mode 0600)"


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """The file is there, mode 0600, valid JSON, and holds no password."""
    path = Path(str(plan.actions[0].args["file"]))
    if not path.is_file():
        return False, f"{path} was not written"
    mode = path.stat().st_mode & 0o777
    text = path.read_text()
    json.loads(text)
    if mode != 0o600:
        return False, f"{path} has mode {mode:o}, not 600"
    if any(s in text for s in _secrets(ctx)):
        return False, f"{path} holds a password: delete it"
    return True, f"{path}: valid JSON, mode 600, no password in it"

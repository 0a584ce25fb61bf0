"""``toolkit calibrate``: measure the hold factor from SHOW STATS and show the pools it gives."""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from toolkit.adapters import inventory
from toolkit.adapters.secrets import Secrets
from toolkit.cli.status import ExitStatus
from toolkit.domain.calibrate import PoolMeasure, database_hold_factor, inventory_hold_factor, measure
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.sizing import plan
from toolkit.domain.targets import endpoints

if TYPE_CHECKING:
    from toolkit.adapters.pgbouncer import AdminTarget
    from toolkit.domain.plan import Plan

CALIBRATE_SCHEMA = {"name": "toolkit.calibrate", "version": 1}
POOL_SETTINGS = ("default_pool_size", "reserve_pool_size", "min_pool_size")


class CalibrateFormat(enum.StrEnum):
    """Output formats of ``toolkit calibrate``."""

    table = "table"
    json = "json"


def calibrate_command(
    inventory_path: Annotated[str, typer.Option("-i", "--inventory", help="Inventory file or directory.")],
    window: Annotated[float, typer.Option("--window", help="Seconds between the two SHOW STATS.")] = 10.0,
    output: Annotated[
        CalibrateFormat, typer.Option("--format", "-f", help="Output format.")
    ] = CalibrateFormat.table,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per PgBouncer to connect.")] = 3.0,
    secrets_dir: Annotated[
        str | None, typer.Option("--secrets", help="Directory of password files (default: the lab's .lab/).")
    ] = None,
) -> None:
    """Measure the hold factor under live load and show the pool sizes it gives; exit 3 without traffic."""
    # Imported here, not at the top: psycopg takes most of a second, and --help should not pay for it.
    from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget  # noqa: PLC0415

    if window <= 0:
        raise typer.BadParameter("must be above 0", param_hint="--window")
    data = inventory.load(inventory_path)
    topology = topology_from_inventory(data.groups, data.hostvars)
    secrets = Secrets.locate(inventory_path, secrets_dir)
    password = secrets.password("pgbouncer") or ""
    targets = [
        AdminTarget(e.address, e.port, e.user, password, e.name)
        for e in endpoints(topology, data.groups, data.hostvars)
        if e.kind == "pgbouncer"
    ]
    consoles = [AdminConsole(t, timeout) for t in targets]
    try:
        measures = sample(consoles, window)
    finally:
        for c in consoles:
            c.close()

    measured = database_hold_factor(measures)
    written = inventory_hold_factor(measured) if measured is not None else None
    current = plan(topology)
    calibrated = (
        plan(replace(topology, database=replace(topology.database, hold_factor=written)))
        if written is not None
        else None
    )
    if output is CalibrateFormat.json:
        doc = _to_dict(measures, measured, written, topology.database.hold_factor, current, calibrated)
        typer.echo(json.dumps(doc, indent=2))
    else:
        _table(measures, measured, written, topology.database.hold_factor, current, calibrated)
    if measured is None:
        typer.echo(
            "toolkit: no transactions in the window on any PgBouncer: nothing to measure; "
            "run calibrate while the application is under its usual load, or with a longer --window",
            err=True,
        )
        raise typer.Exit(ExitStatus.UNKNOWN)


class _StatsSource(Protocol):
    target: AdminTarget

    def rows(self, command: str) -> list[dict[str, Any]]: ...


def sample(
    consoles: Sequence[_StatsSource],
    window: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[PoolMeasure]:
    """SHOW STATS on every console, ``window`` seconds apart; each host's window is its own elapsed time."""
    first = [(c.rows("SHOW STATS"), clock()) for c in consoles]
    sleep(window)
    measures: list[PoolMeasure] = []
    for console, (before, started) in zip(consoles, first, strict=True):
        after = console.rows("SHOW STATS")
        name = console.target.name or console.target.label
        measures += measure(name, before, after, clock() - started)
    return measures


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(
    measures: list[PoolMeasure],
    measured: float | None,
    written: float | None,
    configured: float,
    current: Plan,
    calibrated: Plan | None,
) -> None:
    head = ("host", "pool", "window s", "xact/s", "xact ms", "query ms", "q/xact", "hold", "in use", "")
    rows = [
        (
            m.host,
            m.database,
            _fmt(m.window_s, 1),
            _fmt(m.xact_rate, 1),
            _fmt(m.avg_xact_ms, 3),
            _fmt(m.avg_query_ms, 3),
            _fmt(m.queries_per_xact),
            _fmt(m.hold_factor),
            _fmt(m.in_use),
            m.note,
        )
        for m in measures
    ]
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        typer.echo("  ".join(str(v).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    typer.echo("")
    if measured is None or written is None or calibrated is None:
        typer.echo(f"hold factor: not measured (no transactions); the inventory's {configured:g} stays")
        return
    typer.echo(f"hold factor measured: {measured:.2f} (inventory now: {configured:g})")
    typer.echo(f"inventory value that gives the pools below:  database_hold_factor: {written:g}")
    typer.echo(f"active target: {current.budget.active_target} -> {calibrated.budget.active_target}")
    for now, new in zip(current.pgbouncer, calibrated.pgbouncer, strict=True):
        parts = [f"{s} {now.value(s)} -> {new.value(s)}" for s in POOL_SETTINGS]
        typer.echo(f"pgbouncer {new.host}: " + ", ".join(parts))


def _to_dict(
    measures: list[PoolMeasure],
    measured: float | None,
    written: float | None,
    configured: float,
    current: Plan,
    calibrated: Plan | None,
) -> dict[str, Any]:
    def pools(p: Plan | None) -> dict[str, dict[str, int]] | None:
        if p is None:
            return None
        return {h.host: {s: h.value(s) for s in POOL_SETTINGS} for h in p.pgbouncer}

    return {
        "schema": CALIBRATE_SCHEMA,
        "pools": [
            {
                "host": m.host,
                "database": m.database,
                "status": m.status,
                "note": m.note,
                "window_seconds": m.window_s,
                "transactions": m.xacts,
                "queries": m.queries,
                "xact_rate": m.xact_rate,
                "avg_xact_ms": m.avg_xact_ms,
                "avg_query_ms": m.avg_query_ms,
                "queries_per_xact": m.queries_per_xact,
                "hold_factor": m.hold_factor,
                "connections_in_use": m.in_use,
            }
            for m in measures
        ],
        "hold_factor": {"measured": measured, "inventory": configured, "recommended": written},
        "inventory_values": None if written is None else {"database_hold_factor": written},
        "active_target": {
            "current": current.budget.active_target,
            "calibrated": None if calibrated is None else calibrated.budget.active_target,
        },
        "pgbouncer": {"current": pools(current), "calibrated": pools(calibrated)},
    }

"""``toolkit calibrate``: advise pool sizes.

``--sweep`` (the recommended path, on staging; :mod:`toolkit.cli.calibrate_sweep`) measures throughput and
p99 at each pool size and advises the knee as an inventory line. Without it, the hold factor is read
from SHOW STATS: kept for what it shows about transactions, but on hosts that share cores it advises
pools below the sweep's best (docs/sizing.md section 6).
"""

from __future__ import annotations

import enum
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from toolkit.adapters.inventory import Vault
from toolkit.cli.calibrate_sweep import SWEEP_SIZES, SweepRequest, SweepWorkload
from toolkit.cli.calibrate_sweep import run as run_sweep
from toolkit.cli.context import load_context
from toolkit.cli.numbers import count_option, seconds_option
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.cli.status import ExitStatus
from toolkit.domain.calibrate import (
    MAX_ROUNDS,
    PoolMeasure,
    database_hold_factor,
    inventory_hold_factor,
    measure,
)
from toolkit.domain.errors import UsageError
from toolkit.domain.pgbouncer_rows import StatsRow
from toolkit.domain.sizing import plan

if TYPE_CHECKING:
    from toolkit.adapters.pgbouncer import AdminTarget
    from toolkit.domain.plan import Plan

CALIBRATE_SCHEMA = {"name": "toolkit.calibrate", "version": 1}
POOL_SETTINGS = ("default_pool_size", "reserve_pool_size", "min_pool_size")
MAX_CLIENTS = 100_000  # pgbench clients beyond any real load
_CLIENTS = count_option("--clients", "Sweep: pgbench clients (default: the plan's demand).", 1, MAX_CLIENTS)
_ROUNDS = count_option("--rounds", "Sweep: run every size this many times, interleaved.", 1, MAX_ROUNDS)


class CalibrateFormat(enum.StrEnum):
    """Output formats of ``toolkit calibrate``."""

    table = "table"
    json = "json"


def calibrate_command(
    inventory_path: InventoryOption = None,
    window: Annotated[float, seconds_option("--window", "Seconds between the two SHOW STATS.")] = 10.0,
    output: Annotated[
        CalibrateFormat, typer.Option("--format", "-f", help="Output format.")
    ] = CalibrateFormat.table,
    timeout: Annotated[float, seconds_option("--timeout", "Seconds per PgBouncer to connect.")] = 3.0,
    secrets_dir: SecretsOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
    sweep: Annotated[
        bool,
        typer.Option(
            "--sweep", help="Recommended, staging only: SET pool sizes live, pgbench each, advise the knee."
        ),
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", help="Run the sweep. Without it: what it would do.")] = False,
    sizes: Annotated[str, typer.Option("--sizes", help="Sweep: pool sizes, comma-separated.")] = SWEEP_SIZES,
    duration: Annotated[float, seconds_option("--duration", "Sweep: seconds of pgbench per size.")] = 10.0,
    clients: Annotated[int | None, _CLIENTS] = None,
    workload: Annotated[
        SweepWorkload, typer.Option("--workload", help="Sweep: pgbench script.")
    ] = SweepWorkload.django,
    database: Annotated[
        str | None, typer.Option("--database", help="Sweep: database (default: the host's first).")
    ] = None,
    user: Annotated[
        str | None, typer.Option("--user", help="Sweep: user (default: the host's first).")
    ] = None,
    target: Annotated[
        str | None, typer.Option("--target", help="Sweep: the PgBouncer host, if there are several.")
    ] = None,
    write: Annotated[
        Path | None,
        typer.Option("--write", help="Sweep: put the advised line into this host_vars/group_vars YAML file."),
    ] = None,
    rounds: Annotated[int, _ROUNDS] = 1,
) -> None:
    """Advise pool sizes: --sweep finds the knee and its inventory line; alone, the hold factor."""
    vault = Vault(vault_password_file, ask_vault_pass)
    if sweep or yes or write is not None:
        request = SweepRequest(
            inventory_path,
            secrets_dir,
            vault,
            yes,
            sizes,
            duration,
            clients,
            workload,
            database,
            user,
            target,
            timeout,
            write,
            rounds,
        )
        run_sweep(request, sweep, output is CalibrateFormat.json)
        return
    # Imported here, not at the top: psycopg takes most of a second, and --help should not pay for it.
    from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget  # noqa: PLC0415

    if window <= 0:
        raise UsageError("must be above 0", "--window")
    ctx = load_context(inventory_path, secrets_dir, vault, announce=True)
    topology = ctx.topology
    password = ctx.secrets.password("pgbouncer") or ""
    targets = [AdminTarget(e.address, e.port, e.user, password, e.name) for e in ctx.of_kind("pgbouncer")]
    consoles = [AdminConsole(t, timeout) for t in targets]
    try:
        measures = sample(consoles, window)
    finally:
        for c in consoles:
            c.close()

    measured = database_hold_factor(measures)
    written = inventory_hold_factor(measured) if measured is not None else None
    current = ctx.require_plan()
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

    def stats(self) -> tuple[StatsRow, ...]: ...


def sample(
    consoles: Sequence[_StatsSource],
    window: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> list[PoolMeasure]:
    """SHOW STATS on every console, ``window`` seconds apart; each host's window is its own elapsed time."""
    first = [(c.stats(), clock()) for c in consoles]
    sleep(window)
    measures: list[PoolMeasure] = []
    for console, (before, started) in zip(consoles, first, strict=True):
        after = console.stats()
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

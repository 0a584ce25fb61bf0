"""``toolkit calibrate``: measure the hold factor from SHOW STATS and show the pools it gives."""

from __future__ import annotations

import enum
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer

from toolkit.adapters.inventory import Vault
from toolkit.cli.context import load_context
from toolkit.cli.numbers import count, count_option, seconds_option
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.cli.status import ExitStatus
from toolkit.domain.calibrate import (
    PoolMeasure,
    database_hold_factor,
    inventory_hold_factor,
    knee,
    measure,
    values_for_pool,
)
from toolkit.domain.errors import UsageError
from toolkit.domain.pgbouncer_rows import StatsRow
from toolkit.domain.sizing import plan

if TYPE_CHECKING:
    from toolkit.adapters.pgbouncer import AdminTarget
    from toolkit.adapters.secrets import Secrets
    from toolkit.domain.plan import Plan

CALIBRATE_SCHEMA = {"name": "toolkit.calibrate", "version": 1}
POOL_SETTINGS = ("default_pool_size", "reserve_pool_size", "min_pool_size")


SWEEP_SIZES = "2,4,8,16,32,64"
MAX_POOL, MAX_CLIENTS = 10_000, 100_000  # a pool size and pgbench clients beyond any real one
_CLIENTS = count_option("--clients", "Sweep: pgbench clients (default: the plan's demand).", 1, MAX_CLIENTS)


class SweepWorkload(enum.StrEnum):
    """pgbench scripts of ``--sweep``."""

    django = "django"
    tpcb = "tpcb"


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
        bool, typer.Option("--sweep", help="Staging only: SET pool sizes live, pgbench each, find the knee.")
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
) -> None:
    """Measure the hold factor under live load and show the pool sizes it gives; exit 3 without traffic."""
    vault = Vault(vault_password_file, ask_vault_pass)
    if sweep or yes:
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
        )
        _sweep(request, sweep, output)
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


# --- --sweep ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepRequest:
    """The command line of ``calibrate --sweep``."""

    inventory: str | None
    secrets: str | None
    vault: Vault
    yes: bool
    sizes: str
    duration: float
    clients: int | None
    workload: SweepWorkload
    database: str | None
    user: str | None
    target: str | None
    timeout: float


def _sweep(req: SweepRequest, sweep: bool, output: CalibrateFormat) -> None:
    """Plan the sweep (refusing bad input), show it, and run it only with --yes."""
    if not sweep:
        raise UsageError("--yes acts only with --sweep (calibrate alone changes nothing)")
    try:
        sizes = sorted({count("--sizes", 1, MAX_POOL)(x.strip()) for x in req.sizes.split(",") if x.strip()})
    except UsageError as exc:
        raise UsageError(f"--sizes: each pool size {exc.message}; such as 4,8,16,32") from None
    if not sizes or sizes[0] < 1 or req.duration <= 0 or (req.clients is not None and req.clients < 1):
        raise UsageError("--sizes must be at least 1, --duration above 0 and --clients at least 1")
    ctx = load_context(req.inventory, req.secrets, req.vault, announce=True)
    topology = ctx.topology
    hosts = {h.name: h for h in topology.pgbouncers}
    name = req.target or next(iter(hosts))
    if name not in hosts or (req.target is None and len(hosts) > 1):
        raise UsageError(f"pick the PgBouncer host to sweep with --target (one of: {', '.join(hosts)})")
    if hosts[name].processes > 1:
        raise UsageError(
            f"PgBouncer host {name} runs {hosts[name].processes} processes on one port: a SET reaches only "
            "the process the admin session lands on; sweep a single-process staging PgBouncer"
        )
    ep = next(e for e in ctx.of_kind("pgbouncer") if e.name == name)
    now = next(p for p in ctx.require_plan().pgbouncer if p.host == name)
    what: dict[str, Any] = {
        "pgbouncer": name,
        "address": f"{ep.address}:{ep.port}",
        "database": req.database or hosts[name].databases[0],
        "user": req.user or hosts[name].users[0],
        "sizes": sizes,
        "clients": req.clients or max(1, now.client_demand),
        "duration_s": req.duration,
        "workload": req.workload.value,
        "plan_default_pool_size": now.value("default_pool_size"),
    }
    if not req.yes:
        _show_dry_run(what, output)
        typer.echo("dry run: nothing changed (add --yes to act, on a staging database only)", err=True)
        raise typer.Exit(ExitStatus.OK)
    doc = _run_sweep(req, what, ep.address, ep.port, ep.admin_user, ctx.secrets)
    best = knee({p["size"]: p["tps"] for p in doc["points"]})
    values, new_plan = values_for_pool(topology, name, best)
    new = next(h for h in new_plan.pgbouncer if h.host == name)
    doc |= {"knee": best, "inventory_values": values, "pgbouncer": {s: new.value(s) for s in POOL_SETTINGS}}
    if output is CalibrateFormat.json:
        typer.echo(json.dumps(doc, indent=2))
        return
    typer.echo("pool  TPS      p99 ms  errors")
    for pt in doc["points"]:
        typer.echo(f"{pt['size']:<5} {pt['tps']:<8.0f} {_fmt(pt['p99_ms'], 1):<7} {pt['errors']}")
    restored = doc["sweep"]["restored_default_pool_size"]
    typer.echo(
        f"knee: pool {best} (smallest within 5% of the best TPS); default_pool_size {restored} restored"
    )
    typer.echo(
        "inventory values that make the plan give it:  " + ", ".join(f"{k}: {v}" for k, v in values.items())
    )


def _run_sweep(
    req: SweepRequest, what: dict[str, Any], address: str, port: int, admin_user: str, secrets: Secrets
) -> dict[str, Any]:
    """Check the pgbench tables, then SET, pgbench and restore through the adapters (loads psycopg)."""
    from toolkit.adapters import pgbench  # noqa: PLC0415
    from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget  # noqa: PLC0415

    password = secrets.password("pgbouncer_admin") or ""
    target = pgbench.Endpoint(address, port, what["user"], what["database"])
    env = dict(os.environ)  # pgbench finds its password as libpq does: PGPASSWORD or the password file
    scale = pgbench.dataset_scale(target, env, req.timeout)
    if scale is None:
        raise UsageError(
            f"no pgbench tables in database {target.dbname}: create them on staging first: pgbench -i -s 10 "
            f"-h {address} -p {port} -U {target.user} {target.dbname} (password: PGPASSWORD or ~/.pgpass)"
        )

    def progress(point: pgbench.SweepPoint) -> None:
        typer.echo(
            f"pool {point.size}: {point.result.tps:.0f} TPS, p99 {_fmt(point.result.p99_ms, 1)} ms", err=True
        )

    with AdminConsole(
        AdminTarget(address, port, admin_user, password, what["pgbouncer"]), req.timeout
    ) as console:
        original, points = pgbench.sweep(
            console,
            target,
            what["sizes"],
            clients=what["clients"],
            duration=req.duration,
            env=env,
            script=pgbench.DJANGO_LIKE if req.workload is SweepWorkload.django else None,
            scale=scale,
            progress=progress,
        )
    done = {**what, "restored_default_pool_size": original}
    return {
        "schema": CALIBRATE_SCHEMA,
        "dry_run": False,
        "sweep": done,
        "points": [p.to_dict() for p in points],
    }


def _show_dry_run(what: dict[str, Any], output: CalibrateFormat) -> None:
    if output is CalibrateFormat.json:
        typer.echo(json.dumps({"schema": CALIBRATE_SCHEMA, "dry_run": True, "sweep": what}, indent=2))
        return
    sizes, load = ", ".join(map(str, what["sizes"])), len(what["sizes"]) * what["duration_s"]
    typer.echo(
        f"calibrate --sweep would, on PgBouncer {what['pgbouncer']} ({what['address']}), database "
        f"{what['database']}, user {what['user']}:\n  1. SET default_pool_size to {sizes} in turn "
        f"(checked in SHOW DATABASES)\n  2. at each size run pgbench ({what['workload']}, {what['clients']} "
        f"clients, {what['duration_s']:g} s) through PgBouncer: {load:g} s of load\n  3. restore "
        "default_pool_size to its current value at the end, even on error\n  4. print the knee (the smallest "
        "size within 5% of the best TPS) and the inventory values that make the plan give it (now "
        f"{what['plan_default_pool_size']})\nFor a STAGING database only: every client of this PgBouncer "
        "gets the swept pool sizes."
    )

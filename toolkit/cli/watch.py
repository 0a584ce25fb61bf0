"""``toolkit watch``: every pool of every PgBouncer process beside its plan, refreshed until Ctrl-C.

What a person needs at 3 a.m.: per pool the servers in use against the planned pool size (and the
reserve), the utilisation, waiting clients and the app nodes they come from, the longest wait; pools
under the most pressure first, saturated ones marked (and in red on a terminal); then PostgreSQL's
slots used against usable. The rows are doctor's gauges (toolkit/domain/metrics.py).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from toolkit.adapters.inventory import Vault
from toolkit.cli.context import load_context
from toolkit.cli.numbers import count as whole
from toolkit.cli.numbers import seconds
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.domain.errors import UsageError
from toolkit.domain.metrics import NEAR, PoolRow, by_pressure, pool_rows, postgres_row
from toolkit.domain.models import Topology
from toolkit.domain.plan import Plan
from toolkit.domain.snapshot import PgBouncerState, PostgresState, TargetStatus

COLUMNS = ("servers", "util", "cl", "wait", "from", "maxwait", "state")
LEFT = ("pgbouncer", "pool", "from", "state")
SATURATED, NEAR_STYLE = "bold red", "yellow"


def _servers(r: PoolRow) -> str:
    """``active/planned+reserve``; ``active`` alone without a plan.

    >>> _servers(PoolRow("h", "1", "a", "d", "u", 0, 0, 7, 0, 0, 0.0, 20, 5))
    '7/20+5'
    """
    if r.pool_size_planned is None:
        return str(r.sv_active)
    reserve = f"+{r.reserve_pool_size_planned}" if r.reserve_pool_size_planned else ""
    return f"{r.sv_active}/{r.pool_size_planned}{reserve}"


def _percent(ratio: float | None) -> str:
    return "-" if ratio is None else f"{ratio:.0%}"


def _state(r: PoolRow) -> tuple[str, str]:
    """The word in the state column, and the row's style (no style where all is well)."""
    if r.saturated:
        return "SATURATED", SATURATED
    if (r.utilisation or 0.0) >= NEAR:
        return "near limit", NEAR_STYLE
    return "", ""


def where(host: str, address: str) -> str:
    """How a row names one PgBouncer process.

    >>> where("pgb2", "198.18.0.12:6432 process 2"), where("pgb1", "198.18.0.11:6432")
    ('pgb2@198.18.0.12:6432#2', 'pgb1@198.18.0.11:6432')
    """
    return f"{host}@{address.replace(' process ', '#')}"


def _from(r: PoolRow) -> str:
    return ", ".join(f"{node} {n}" for node, n in r.waiting_by_app if n)


def pools_table(
    statuses: Sequence[TargetStatus],
    states: Sequence[PgBouncerState],
    topology: Topology | None = None,
    plan: Plan | None = None,
) -> Table:
    """One row per pool per PgBouncer process, by pressure, fleet totals last; unreachable targets say why.

    A row names the inventory host and the address read, ``#N`` for one process of several on a port
    (``pgb2@198.18.0.12:6432#2``). A process with no pool yet (no client has come) still gets
    a row, so every host is on screen. Without a plan (or a topology) the planned columns are empty.
    """
    table = Table(title=f"pools at {time.strftime('%H:%M:%S')}", title_justify="left")
    for col in ("pgbouncer", "pool", *COLUMNS):
        if col in LEFT:
            table.add_column(col, overflow="fold")
        else:  # numbers are never cut: the names fold onto a second line first
            table.add_column(col, justify="right", no_wrap=True, min_width=len(col))
    rows = by_pressure(pool_rows(topology.app_nodes if topology else (), plan, states))
    # Names come from the server (database and user names can hold "[/]"): Text, never markup.
    for r in rows:
        word, style = _state(r)
        table.add_row(
            Text(where(r.host, r.address)),
            Text(f"{r.database}/{r.user}"),
            _servers(r),
            _percent(r.utilisation),
            str(r.cl_active),
            str(r.cl_waiting),
            Text(_from(r)),
            f"{r.maxwait_seconds:.1f}",
            word,
            style=style or None,
        )
    with_pools = {where(r.host, r.address) for r in rows}
    for name in sorted({where(st.host, st.address) for st in states} - with_pools):
        table.add_row(Text(name), "[dim]no pool yet[/dim]", "0", "-", "0", "0", "", "0.0", "")
    for s in statuses:
        if not s.ok:
            table.add_row(
                Text(where(s.name, s.address)),
                f"[red]{escape(str(s.cause))}[/red]",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            )
    planned = sum(r.pool_size_planned or 0 for r in rows)
    active = sum(r.sv_active for r in rows)
    servers = f"{active}/{planned}" if planned else str(active)
    table.add_row(
        "[bold]fleet[/bold]",
        "",
        servers,
        _percent(active / planned if planned else None),
        str(sum(r.cl_active for r in rows)),
        str(sum(r.cl_waiting for r in rows)),
        "",
        f"{max((r.maxwait_seconds for r in rows), default=0.0):.1f}",
        "",
    )
    return table


def postgres_line(
    topology: Topology | None, state: PostgresState | None, status: TargetStatus | None
) -> Text:
    """PostgreSQL's slots used against usable, or why it was not read."""
    if status is not None and not status.ok:
        return Text(f"PostgreSQL {status.address}: not read: {status.cause}", style="red")
    row = postgres_row(topology, state) if topology is not None else None
    if row is None:
        return Text("PostgreSQL: not read")
    ratio = row.utilisation or 0.0
    style = SATURATED if ratio >= 1 else NEAR_STYLE if ratio >= NEAR else ""
    return Text(
        f"PostgreSQL {row.host}: {row.connections} of {row.usable} usable slots in use "
        f"({_percent(row.utilisation)}; max_connections {row.max_connections})",
        style=style,
    )


def view(
    statuses: Sequence[TargetStatus],
    states: Sequence[object],
    topology: Topology | None,
    plan: Plan | None,
) -> RenderableType:
    """The whole screen: the pools table, then PostgreSQL's line."""
    pgb = [st for st in states if isinstance(st, PgBouncerState)]
    pg = next((st for st in states if isinstance(st, PostgresState)), None)
    pg_status = next((st for st in statuses if st.kind == "postgres"), None)
    pgb_statuses = [st for st in statuses if st.kind != "postgres"]
    return Group(pools_table(pgb_statuses, pgb, topology, plan), postgres_line(topology, pg, pg_status))


def watch_command(
    inventory_path: InventoryOption = None,
    interval: Annotated[
        float,
        typer.Option(
            "--interval", help="Seconds between refreshes.", parser=seconds("--interval"), metavar="SECONDS"
        ),
    ] = 1.0,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", help="Seconds per PgBouncer.", parser=seconds("--timeout"), metavar="SECONDS"
        ),
    ] = 2.0,
    secrets_dir: SecretsOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
    count: Annotated[
        int,
        typer.Option(
            "--count",
            help="Stop after this many refreshes (0: until Ctrl-C).",
            parser=whole("--count", 0, 1_000_000_000),
            metavar="N",
        ),
    ] = 0,
) -> None:
    """Show every pool against its plan (by pressure, waiting clients by app node) and PostgreSQL's slots."""
    from toolkit import gather  # noqa: PLC0415 - psycopg and redis-py load only when watching

    if interval <= 0 or timeout <= 0 or count < 0:
        raise UsageError("--interval and --timeout must be above 0, --count at least 0")
    ctx = load_context(inventory_path, secrets_dir, Vault(vault_password_file, ask_vault_pass), announce=True)
    targets, secrets = [*ctx.of_kind("pgbouncer"), *ctx.of_kind("postgres")], ctx.secrets
    # Each process of a so_reuseport host is read on its own (its session reconnects until the
    # kernel hands it that process), so every process has its rows.
    processes = {h.name: h.processes for h in ctx.topology.pgbouncers}
    done = 0
    console = Console()
    try:
        with Live(Table(), console=console, auto_refresh=False) as live:
            while count == 0 or done < count:
                statuses, states = gather.read_all(targets, secrets, timeout, processes)
                live.update(view(statuses, states, ctx.topology, ctx.plan), refresh=True)
                done += 1
                if count == 0 or done < count:
                    time.sleep(interval)
    except KeyboardInterrupt:
        pass
    if not console.is_terminal:
        console.line()  # Live ends a piped screen without a newline

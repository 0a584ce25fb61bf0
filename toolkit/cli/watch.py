"""``toolkit watch``: every pool of every PgBouncer process, refreshed each second until Ctrl-C."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from toolkit.adapters.inventory import Vault
from toolkit.cli.context import load_context
from toolkit.cli.numbers import count as whole
from toolkit.cli.numbers import seconds
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.domain.snapshot import PgBouncerState, TargetStatus

COLUMNS = ("cl_active", "cl_waiting", "sv_active", "sv_idle", "maxwait")


def pools_table(
    statuses: Sequence[TargetStatus],
    states: Sequence[PgBouncerState],
) -> Table:
    """One row per pool per PgBouncer process, fleet totals last; unreachable targets say why.

    A row names the inventory host and the address read (``pgb2@198.18.0.12:6432 process 2`` for
    one process of several on a port). A process with no pool yet (no client has come) still gets
    a row, so every host is on screen.
    """
    table = Table(title=f"pools at {time.strftime('%H:%M:%S')}", title_justify="left")
    for col in ("pgbouncer", "database/user", *COLUMNS):
        table.add_column(col, justify="left" if col in ("pgbouncer", "database/user") else "right")
    totals = [0, 0, 0, 0]
    worst_wait = 0.0
    for state in sorted(states, key=lambda st: (st.host, st.address)):
        name = escape(f"{state.host}@{state.address}")
        pools = [p for p in state.pools if p.database != "pgbouncer"]
        if not pools:
            table.add_row(name, "[dim]no pool yet[/dim]", "0", "0", "0", "0", "0.0")
        for p in pools:
            wait = (
                f"[red]{p.maxwait_seconds:.1f}[/red]"
                if p.maxwait_seconds >= 1
                else f"{p.maxwait_seconds:.1f}"
            )
            waiting = f"[red]{p.cl_waiting}[/red]" if p.cl_waiting else "0"
            # Names come from the server (database and user names can hold "[/]"): never markup.
            table.add_row(
                name,
                escape(f"{p.database}/{p.user}"),
                str(p.cl_active),
                waiting,
                str(p.sv_active),
                str(p.sv_idle),
                wait,
            )
            for i, v in enumerate((p.cl_active, p.cl_waiting, p.sv_active, p.sv_idle)):
                totals[i] += v
            worst_wait = max(worst_wait, p.maxwait_seconds)
    for s in statuses:
        if not s.ok:
            table.add_row(
                escape(f"{s.name}@{s.address}"), f"[red]{escape(str(s.cause))}[/red]", "", "", "", "", ""
            )
    table.add_row("[bold]fleet[/bold]", "", *(str(v) for v in totals), f"{worst_wait:.1f}")
    return table


def watch_command(
    inventory_path: InventoryOption = None,
    interval: Annotated[
        float,
        typer.Option("--interval", help="Seconds between refreshes.", parser=seconds(), metavar="SECONDS"),
    ] = 1.0,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per PgBouncer.", parser=seconds(), metavar="SECONDS")
    ] = 2.0,
    secrets_dir: SecretsOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
    count: Annotated[
        int,
        typer.Option(
            "--count",
            help="Stop after this many refreshes (0: until Ctrl-C).",
            parser=whole(0, 1_000_000_000),
            metavar="N",
        ),
    ] = 0,
) -> None:
    """Show every pool (clients active/waiting, servers active/idle, max wait) live."""
    from toolkit import gather  # noqa: PLC0415 - psycopg and redis-py load only when watching

    if interval <= 0 or timeout <= 0 or count < 0:
        raise typer.BadParameter("--interval and --timeout must be above 0, --count at least 0")
    ctx = load_context(inventory_path, secrets_dir, Vault(vault_password_file, ask_vault_pass), announce=True)
    targets, secrets = ctx.of_kind("pgbouncer"), ctx.secrets
    # Each process of a so_reuseport host is read on its own (its session reconnects until the
    # kernel hands it that process), so every process has its rows.
    processes = {h.name: h.processes for h in ctx.topology.pgbouncers}
    done = 0
    try:
        with Live(Table(), console=Console(), auto_refresh=False) as live:
            while count == 0 or done < count:
                statuses, states = gather.read_all(targets, secrets, timeout, processes)
                pgb = [s for s in states if isinstance(s, PgBouncerState)]
                live.update(pools_table(statuses, pgb), refresh=True)
                done += 1
                if count == 0 or done < count:
                    time.sleep(interval)
    except KeyboardInterrupt:
        pass

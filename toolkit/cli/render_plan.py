"""Render a :class:`Plan` as tables for a terminal."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from toolkit.domain.plan import Plan


def plan_table(plan: Plan, console: Console | None = None) -> None:
    """Print the budget, then each PgBouncer and Redis host's settings with the reason for each."""
    out = console or Console()
    budget = Table(title="PostgreSQL connection budget", title_justify="left")
    # Item and setting names, values and host names stay whole at 80 columns; the "why" prose wraps.
    budget.add_column("item", no_wrap=True, overflow="fold")
    budget.add_column("slots", justify="right", no_wrap=True)
    budget.add_column("why", overflow="fold")
    for line in plan.budget.lines:
        budget.add_row(line.item, str(line.value), line.reason)
    out.print(budget)
    out.print(f"active target: {plan.budget.active_target} server connections across all pools")
    for p in plan.pgbouncer:
        t = Table(
            title=f"pgbouncer {p.host}: {p.processes} process(es), {p.pool_mode} mode, "
            f"{p.pools} pool(s) per process, {p.client_demand} clients routed",
            title_justify="left",
        )
        _setting_columns(t)
        for name, sized in p.settings:
            t.add_row(name, str(sized.value), sized.reason)
        t.add_row("open files (LimitNOFILE)", str(p.nofile.value), p.nofile.reason)
        out.print(t)
    for warning in plan.warnings:
        out.print(f"[bold yellow]warning:[/] {escape(warning)}")
    for r in plan.redis:
        t = Table(
            title=f"redis {r.host}: {r.profile} profile, {r.client_demand} app clients", title_justify="left"
        )
        _setting_columns(t)
        t.add_row("maxclients", str(r.maxclients.value), r.maxclients.reason)
        mem = "-" if r.maxmemory is None else f"{r.maxmemory // (1024 * 1024)}mb"
        t.add_row("maxmemory", mem, r.maxmemory_reason)
        t.add_row("maxmemory-policy", r.maxmemory_policy, r.policy_reason)
        out.print(t)


def _setting_columns(table: Table) -> None:
    """setting and value never wrapped (a cut name reads as another setting); why wraps."""
    table.add_column("setting", no_wrap=True, overflow="fold")
    table.add_column("value", justify="right", no_wrap=True)
    table.add_column("why", overflow="fold")

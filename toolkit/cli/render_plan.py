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
    for col in ("item", "slots", "why"):
        budget.add_column(col, justify="right" if col == "slots" else "left")
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
        t.add_column("setting")
        t.add_column("value", justify="right")
        t.add_column("why")
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
        t.add_column("setting")
        t.add_column("value", justify="right")
        t.add_column("why")
        t.add_row("maxclients", str(r.maxclients.value), r.maxclients.reason)
        mem = "-" if r.maxmemory is None else f"{r.maxmemory // (1024 * 1024)}mb"
        t.add_row("maxmemory", mem, r.maxmemory_reason)
        t.add_row("maxmemory-policy", r.maxmemory_policy, r.policy_reason)
        out.print(t)

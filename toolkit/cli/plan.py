"""``toolkit plan``: the pool plan and connection budget for every PgBouncer and Redis host.

Its cost is mostly the ``ansible-inventory --list`` it runs (bench/plan_speed.py, goal: the whole
command within 1.2 x that): the console script starts the read before typer loads
(toolkit/cli/launch.py; here, when it did not), and the modules that build and check the plan are
imported while it runs.
"""

from __future__ import annotations

import enum
import json
from dataclasses import replace
from typing import Annotated

import typer

from toolkit.adapters import inventory
from toolkit.cli.launch import claim
from toolkit.cli.options import AskVaultPassOption, InventoryOption, VaultPasswordFileOption
from toolkit.domain.errors import SizingError


class PlanFormat(enum.StrEnum):
    """Output formats of ``toolkit plan``."""

    table = "table"
    json = "json"


def plan_command(
    inventory_path: InventoryOption = None,
    output: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = PlanFormat.table,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
) -> None:
    """Show the pool plan and connection budget computed from the inventory."""
    vault = inventory.Vault(vault_password_file, ask_vault_pass)
    given = inventory_path is None or bool(inventory_path.strip())  # an empty -i: load_context says so
    source = inventory.resolve(inventory_path) if given else None
    # Started by the console script before typer loaded (toolkit/cli/launch.py), else here.
    pending = (
        None if source is None else claim(source.paths, vault) or inventory.start(source.paths, vault=vault)
    )
    try:
        # Imported while ansible-inventory runs: the plan's modules, and rich for the table.
        from toolkit.cli.context import load_context  # noqa: PLC0415
        from toolkit.domain.peers import plan_notes  # noqa: PLC0415
        from toolkit.domain.sizing_fixes import smallest_changes  # noqa: PLC0415

        if output is PlanFormat.table:  # rich, only for the table
            from toolkit.cli import render_plan  # noqa: PLC0415
        ctx = load_context(inventory_path, vault=vault, pending=pending)
    except BaseException:
        if pending is not None:
            pending.cancel()
        raise
    if ctx.plan_error is not None:
        _refuse(ctx.plan_error, smallest_changes(ctx.topology), json_out=output is PlanFormat.json)
    result = ctx.require_plan()
    minimum = {h: str(v.get("pgbouncer_minimum_version") or "") for h, v in ctx.data.hostvars.items()}
    result = replace(result, warnings=(*result.warnings, *plan_notes(ctx.topology, minimum)))
    if output is PlanFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        render_plan.plan_table(result)


def _refuse(error: SizingError, fixes: list[str], *, json_out: bool) -> None:
    """An infeasible plan: JSON on stdout when asked, then the one-line refusal with each change that fits."""
    from toolkit.domain.plan import PLAN_SCHEMA  # noqa: PLC0415

    if json_out:
        refusal = {"kind": error.kind, "message": str(error), "fixes": fixes}
        typer.echo(json.dumps({"schema": PLAN_SCHEMA, "error": refusal}, indent=2))
    if fixes:
        raise SizingError(f"{error} (each of these alone fits: {'; '.join(fixes)})", kind=error.kind)
    raise error

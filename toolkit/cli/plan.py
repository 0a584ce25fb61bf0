"""``toolkit plan``: the pool plan and connection budget for every PgBouncer and Redis host."""

from __future__ import annotations

import enum
import json
from typing import Annotated

import typer

from toolkit.adapters.inventory import Vault
from toolkit.cli.context import load_context
from toolkit.cli.options import AskVaultPassOption, InventoryOption, VaultPasswordFileOption


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
    ctx = load_context(inventory_path, vault=Vault(vault_password_file, ask_vault_pass))
    result = ctx.require_plan()
    if output is PlanFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from toolkit.cli.render_plan import plan_table  # noqa: PLC0415 - rich only for the table

        plan_table(result)

"""``toolkit plan``: the pool plan and connection budget for every PgBouncer and Redis host."""

from __future__ import annotations

import enum
import json
from typing import Annotated

import typer

from toolkit.adapters import inventory
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.sizing import plan


class PlanFormat(enum.StrEnum):
    """Output formats of ``toolkit plan``."""

    table = "table"
    json = "json"


def plan_command(
    inventory_path: Annotated[str, typer.Option("-i", "--inventory", help="Inventory file or directory.")],
    output: Annotated[PlanFormat, typer.Option("--format", "-f", help="Output format.")] = PlanFormat.table,
) -> None:
    """Show the pool plan and connection budget computed from the inventory."""
    data = inventory.load(inventory_path)
    result = plan(topology_from_inventory(data.groups, data.hostvars))
    if output is PlanFormat.json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
    else:
        from toolkit.cli.render_plan import plan_table  # noqa: PLC0415 - rich only for the table

        plan_table(result)

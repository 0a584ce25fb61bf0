"""``toolkit lab drill NAME``: run an incident drill against the lab's demo app and print its report."""

from __future__ import annotations

import enum
import json
import time
from typing import Annotated

import typer

app = typer.Typer(help="The lab: incident drills against the demo app.", no_args_is_help=True)


class DrillFormat(enum.StrEnum):
    """Output formats of ``toolkit lab drill``."""

    table = "table"
    json = "json"


NAMES = ("pool-exhaustion", "orm-overfetch", "cache-divergence", "async-blocking")


@app.command("drill")
def drill_command(
    name: Annotated[str, typer.Argument(help=f"One of {', '.join(NAMES)}, or 'all'.")],
    inventory_path: Annotated[
        str, typer.Option("-i", "--inventory", help="The lab inventory.")
    ] = "inventory/lab",
    seconds: Annotated[float, typer.Option("--seconds", help="Length of each load phase.")] = 5.0,
    output: Annotated[DrillFormat, typer.Option("--format", "-f", help="Output format.")] = DrillFormat.table,
) -> None:
    """Inject a seed failure, detect it, remediate, verify; exit 0 when every claim held, else 2."""
    if name != "all" and name not in NAMES:
        raise typer.BadParameter(
            f"no drill {name!r}; choose one of {', '.join(NAMES)} or 'all'", param_hint="NAME"
        )
    if seconds < 1:
        raise typer.BadParameter("must be 1 or more", param_hint="--seconds")
    from toolkit.drills import DRILLS  # noqa: PLC0415 - loads the HTTP and database adapters
    from toolkit.drills.lab import Lab  # noqa: PLC0415

    lab = Lab.load(inventory_path)
    lab.check_up()
    reports = []
    for drill in NAMES if name == "all" else (name,):
        started = time.monotonic()
        report = DRILLS[drill][1](lab, seconds)
        report.measurements["drill"] = {"seconds": round(time.monotonic() - started, 1)}
        reports.append(report)
        if output is DrillFormat.table:
            _print(report)
    if output is DrillFormat.json:
        typer.echo(
            json.dumps({"schema": "toolkit.drill/v1", "drills": [r.to_dict() for r in reports]}, indent=2)
        )
    raise typer.Exit(0 if all(r.ok for r in reports) else 2)


def _print(report: object) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from toolkit.domain.drills import DrillReport  # noqa: PLC0415

    assert isinstance(report, DrillReport)
    console = Console()
    loads = Table(title=f"drill {report.name}: {report.title}", title_justify="left")
    for col in ("phase", "clients", "ok req/s", "p50 ms", "p99 ms", "errors"):
        loads.add_column(col, justify="left" if col == "phase" else "right")
    for phase, m in report.measurements.items():
        if "ok_rps" in m:
            loads.add_row(
                phase,
                str(m["connections"]),
                f"{m['ok_rps']:.0f}",
                f"{m['p50_ms']:.1f}",
                f"{m['p99_ms']:.1f}",
                str(m["errors"]),
            )
        elif "agreement" in m:
            loads.add_row(phase, "", f"agreement {m['agreement']:.0%}", "", "", "")
    console.print(loads)
    claims = Table(show_header=True)
    for col in ("held", "claim", "measured"):
        claims.add_column(col)
    for c in report.claims:
        claims.add_row("[green]yes[/]" if c.ok else "[red]NO[/]", c.text, c.figure)
    console.print(claims)
    verdict = "[green]PASS[/]" if report.ok else "[red]FAIL[/]"
    console.print(f"{verdict} {report.name} in {report.measurements.get('drill', {}).get('seconds', '?')} s")

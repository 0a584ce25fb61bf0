"""``python -m lab.drills NAME|all``: run incident drills against the lab's demo app, print their reports.

The exit codes and one-line errors are the toolkit's (:func:`toolkit.cli.app.run`): 0 every claim held,
2 one did not, 3 the demo or a server could not be reached, 64 usage, 65 an inventory without the demo.
"""

from __future__ import annotations

import enum
import json
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Annotated

import typer

from lab.drills import async_blocking, cache_divergence, orm_overfetch, pool_exhaustion
from lab.drills.harness import Lab
from lab.drills.report import SCHEMA, DrillReport
from toolkit.cli.app import run
from toolkit.cli.status import ExitStatus
from toolkit.domain.errors import UsageError

_MODULES: tuple[ModuleType, ...] = (pool_exhaustion, orm_overfetch, cache_divergence, async_blocking)
DRILLS: dict[str, tuple[str, Callable[[Lab, float], DrillReport]]] = {
    m.NAME: (m.TITLE, m.run) for m in _MODULES
}
NAMES = tuple(DRILLS)
PROG = "python -m lab.drills"

app = typer.Typer(
    help="Incident drills against the lab's demo app (lab only, from the checkout).",
    add_completion=False,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


class DrillFormat(enum.StrEnum):
    """Output formats of the drills."""

    table = "table"
    json = "json"


@app.command()
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
        raise UsageError(f"no drill {name!r}; choose one of {', '.join(NAMES)} or 'all'", "NAME")
    if seconds < 1:
        raise UsageError("must be 1 or more", "--seconds")
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
        typer.echo(json.dumps({"schema": SCHEMA, "drills": [r.to_dict() for r in reports]}, indent=2))
    raise typer.Exit(ExitStatus.OK if all(r.ok for r in reports) else ExitStatus.CRITICAL)


def main(argv: list[str] | None = None) -> None:
    """Run the drills command with the toolkit's error handling (one line, exit code; ``--debug``)."""
    run(app, sys.argv[1:] if argv is None else argv, prog=PROG)


def _print(report: object) -> None:
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from lab.drills.report import DrillReport  # noqa: PLC0415

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

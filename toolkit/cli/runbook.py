"""``toolkit runbook list|show|run``: guarded remediation, dry run unless --yes."""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from toolkit.adapters import inventory
from toolkit.adapters.audit import audit_path
from toolkit.adapters.secrets import Secrets
from toolkit.cli.status import ExitStatus
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.runbooks.base import RunbookError, RunbookPlan, parse_duration
from toolkit.domain.targets import endpoints

if TYPE_CHECKING:
    from toolkit.runbooks.execute import Outcome

app = typer.Typer(
    help="Guarded remediation steps: dry run first, --yes to act, audited, verified.", no_args_is_help=True
)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"


class RunFormat(enum.StrEnum):
    """Output formats of ``toolkit runbook run``."""

    table = "table"
    json = "json"


@app.command("list")
def list_command() -> None:
    """List every runbook and the findings it fixes."""
    from toolkit.runbooks import infos  # noqa: PLC0415 - the runbooks pull in the database drivers

    table = Table(title="runbooks", title_justify="left")
    for col in ("name", "what it does", "fixes"):
        table.add_column(col)
    for info in infos():
        title = f"{info.title} [dim](manual)[/dim]" if info.manual else info.title
        table.add_row(info.name, title, ", ".join(info.fixes))
    Console().print(table)


@app.command("show")
def show_command(name: Annotated[str, typer.Argument(help="Runbook name.")]) -> None:
    """Show a runbook's page: symptom, finding, command, verification, long-term fix."""
    from toolkit.runbooks import infos  # noqa: PLC0415 - the runbooks pull in the database drivers

    known = {i.name: i for i in infos()}
    if name not in known:
        raise RunbookError(f"unknown runbook {name!r}; known: {', '.join(sorted(known))}")
    page = DOCS / f"{name}.md"
    if page.is_file():
        typer.echo(page.read_text())
    else:
        info = known[name]
        typer.echo(
            f"{info.name}: {info.title}\nfixes: {', '.join(info.fixes)}\noptions: {' '.join(info.params)}"
        )


def _confirm(plan: RunbookPlan, database: str | None, confirm_database: bool) -> bool:
    targets = sorted({a.target for a in plan.actions})
    if confirm_database:
        typed = typer.prompt(f"type the database name ({database}) to act on {', '.join(targets)}")
        return bool(database) and typed == database
    return typer.confirm(f"act on {', '.join(targets)} ({len(plan.actions)} action(s))?", default=False)


def _render(plan: RunbookPlan, outcome: Outcome | None, output: RunFormat, dry_run: bool) -> None:
    if output is RunFormat.json:
        doc = {"schema": "toolkit.runbook/v1", "dry_run": dry_run, "plan": plan.to_dict()}
        if outcome is not None:
            doc["results"] = [
                {"target": a.target, "action": a.kind, "parameters": dict(a.args), "result": r}
                for a, r in outcome.results + outcome.failed
            ]
            doc["verified"] = outcome.verified
            doc["verification"] = outcome.verification
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console = Console()
    table = Table(title=f"{plan.runbook}: {len(plan.actions)} action(s)", title_justify="left")
    for col in ("target", "action", "why"):
        table.add_column(col)
    for a in plan.actions:
        table.add_row(a.target, a.describe(), a.why)
    console.print(table)
    for note in plan.notes:
        console.print(f"[dim]{note}[/dim]")
    if outcome is not None:
        for a, r in outcome.results:
            console.print(f"done: {a.describe()} -> {r}")
        for a, r in outcome.failed:
            console.print(f"[red]failed: {a.describe()} -> {r}[/red]")
        colour = "green" if outcome.verified else "red"
        console.print(f"[{colour}]verify: {outcome.verification}[/{colour}]")


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Runbook name (toolkit runbook list).")],
    inventory_path: Annotated[str, typer.Option("-i", "--inventory", help="Inventory file or directory.")],
    yes: Annotated[bool, typer.Option("--yes", help="Act. Without it: the plan only (dry run).")] = False,
    target: Annotated[str | None, typer.Option("--target", help="One inventory host.")] = None,
    output: Annotated[RunFormat, typer.Option("--format", "-f", help="Output format.")] = RunFormat.table,
    older_than: Annotated[str | None, typer.Option("--older-than", help="Age, such as 30s or 5m.")] = None,
    database: Annotated[str | None, typer.Option("--database", help="Only this database.")] = None,
    application_name: Annotated[str | None, typer.Option("--application-name", help="Only this app.")] = None,
    app_node: Annotated[
        str | None, typer.Option("--app-node", help="Only sessions held by this app node.")
    ] = None,
    grace: Annotated[str, typer.Option("--grace", help="Wait after cancelling, such as 5s.")] = "5s",
    terminate: Annotated[
        bool, typer.Option("--terminate", help="Terminate what a cancel did not stop.")
    ] = False,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Redis key prefix to delete.")] = None,
    key_prefix: Annotated[str | None, typer.Option("--key-prefix", help="Django KEY_PREFIX.")] = None,
    version: Annotated[int | None, typer.Option("--version", help="Django cache VERSION.")] = None,
    bump_version: Annotated[bool, typer.Option("--bump-version", help="Retire by VERSION + 1.")] = False,
    size: Annotated[int | None, typer.Option("--size", help="New pool size.")] = None,
    rate: Annotated[float, typer.Option("--rate", help="Actions per second, at most.")] = 10.0,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds per target operation.")] = 5.0,
    secrets_dir: Annotated[str | None, typer.Option("--secrets", help="Directory of password files.")] = None,
    audit_log: Annotated[str | None, typer.Option("--audit-log", help="Audit log file (JSON lines).")] = None,
    out_file: Annotated[str | None, typer.Option("-o", "--output", help="File to write (snapshot).")] = None,
) -> None:
    """Plan a runbook, show the plan, and act only with --yes (or a confirmation on a terminal)."""
    # Imported here: the runbooks pull in psycopg and redis-py, which `toolkit --help` should not load.
    from toolkit.runbooks import find  # noqa: PLC0415
    from toolkit.runbooks.base import RunContext, RunOptions  # noqa: PLC0415
    from toolkit.runbooks.execute import act_and_verify  # noqa: PLC0415

    if timeout <= 0 or rate <= 0:
        raise RunbookError("--timeout and --rate must be above 0")
    if size is not None and size < 1:
        raise RunbookError(f"--size must be at least 1, got {size}")
    book = find(name)
    opts = RunOptions(
        older_than=parse_duration(older_than, "--older-than") if older_than is not None else None,
        database=database,
        application_name=application_name,
        app_node=app_node,
        grace=parse_duration(grace, "--grace"),
        terminate=terminate,
        prefix=prefix,
        key_prefix=key_prefix,
        version=version,
        bump_version=bump_version,
        size=size,
        rate=rate,
        output=out_file,
    )
    data = inventory.load(inventory_path)
    topology = topology_from_inventory(data.groups, data.hostvars)
    eps = endpoints(topology, data.groups, data.hostvars)
    if target is not None and not any(target in (e.name, e.address) for e in eps):
        raise RunbookError(
            f"unknown target {target!r}; the inventory has: {', '.join(sorted({e.name for e in eps}))}"
        )
    ctx = RunContext(
        data,
        topology,
        eps,
        Secrets.locate(inventory_path, secrets_dir),
        timeout,
        target,
        audit_path(audit_log),
    )
    plan = book.plan(ctx, opts)
    if not plan.actions:
        _render(plan, None, output, dry_run=not yes)
        typer.echo("nothing to do", err=True)
        raise typer.Exit(ExitStatus.OK)
    if not yes and (not sys.stdin.isatty() or not _confirm(plan, database, book.INFO.confirm_database)):
        _render(plan, None, output, dry_run=True)
        typer.echo("dry run: nothing changed (add --yes to act)", err=True)
        raise typer.Exit(ExitStatus.OK)
    outcome = act_and_verify(book, ctx, opts, plan)
    _render(plan, outcome, output, dry_run=False)
    raise typer.Exit(ExitStatus.OK if outcome.ok else ExitStatus.CRITICAL)

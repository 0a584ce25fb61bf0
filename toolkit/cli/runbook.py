"""``toolkit runbook list|show|run``: guarded remediation, dry run unless --yes."""

from __future__ import annotations

import enum
import json
import sys
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from toolkit.adapters import audit
from toolkit.adapters.audit import audit_path
from toolkit.adapters.inventory import Vault
from toolkit.cli.context import load_context
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.cli.status import ExitStatus
from toolkit.domain.errors import ToolkitError
from toolkit.domain.runbooks.base import (
    RunbookPlan,
    RunbookUsageError,
    parse_count,
    parse_duration,
    parse_number,
)
from toolkit.domain.runbooks.sessions import DEFAULT_MAX_SESSIONS

if TYPE_CHECKING:
    from toolkit.runbooks.execute import Outcome

app = typer.Typer(
    help="Guarded remediation steps: dry run first, --yes to act, audited, verified.", no_args_is_help=True
)


class RunFormat(enum.StrEnum):
    """Output formats of ``toolkit runbook run``."""

    table = "table"
    json = "json"


@app.command("list")
def list_command() -> None:
    """List every runbook and the findings it fixes."""
    from toolkit.runbooks import infos  # noqa: PLC0415 - the runbooks pull in the database drivers

    # Names and finding ids stay whole at 80 columns (issue 11 §6): they share the first column, one per
    # line and never wrapped; the prose column takes the rest of the width and wraps.
    table = Table(title="runbooks", title_justify="left")
    table.add_column("runbook / findings it fixes", no_wrap=True, overflow="fold")
    table.add_column("what it does", overflow="fold")
    for info in infos():
        title = Text(info.title)
        if info.manual:
            title.append(" (manual)", style="dim")
        name = Text(info.name, style="bold")
        for fix in info.fixes:
            name.append(f"\n{fix}", style="dim")
        table.add_row(name, title)
    Console().print(table)


def _complete_name(incomplete: str) -> list[str]:
    """Shell completion of a runbook name."""
    from toolkit.runbooks import infos  # noqa: PLC0415 - the runbooks pull in the database drivers

    return [i.name for i in infos() if i.name.startswith(incomplete)]


@app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Runbook name.", autocompletion=_complete_name)],
) -> None:
    """Show a runbook's page: symptom, finding, command, verification, long-term fix."""
    from toolkit.runbooks import infos  # noqa: PLC0415 - the runbooks pull in the database drivers

    known = {i.name: i for i in infos()}
    if name not in known:
        raise RunbookUsageError(f"unknown runbook {name!r}; known: {', '.join(sorted(known))}")
    typer.echo(runbook_page(name), nl=False)


def runbook_page(name: str) -> str:
    """The page of runbook ``name``, read from the installed package (package data, not the checkout).

    ``toolkit/runbooks/pages`` is a symbolic link to ``docs/runbooks``, the one source of the pages; the
    wheel carries copies of them, so an installed toolkit prints the same page as the checkout.
    """
    from importlib.resources import files  # noqa: PLC0415 - only this command reads package data

    page = files("toolkit.runbooks") / "pages" / f"{name}.md"
    if not page.is_file():
        raise ToolkitError(
            f"runbook page {name}.md is missing from the installed package (toolkit/runbooks/pages); "
            "reinstall the toolkit"
        )
    return page.read_text(encoding="utf-8")


# Bounds of the number flags: beyond them a value is a typo, not a wish (and some would overflow
# PostgreSQL's statement_timeout, an int of milliseconds, or sleep for ever).
MAX_TIMEOUT_S = 3600.0
MAX_RATE = 1000.0
MAX_GRACE_S = 3600.0
MAX_SESSIONS = 100_000
MAX_POOL_SIZE = 262_143  # PostgreSQL's own limit on max_connections
MAX_CACHE_VERSION = 2**31 - 1
MAX_PROCESSES = 1024  # as pgbouncer_processes (toolkit.domain.role_inputs)
MAX_CLIENT_CONN = 1_048_576  # Linux's default fs.nr_open: no process gets more open files
MAX_REDIS_CLIENTS = 1_048_576  # the same bound for Redis's maxclients (each client is a descriptor)


def _interactive() -> bool:
    """Whether a person can answer the confirmation (stdin is a terminal)."""
    return sys.stdin.isatty()


def _confirm(plan: RunbookPlan, database: str | None, confirm_database: bool, err: bool) -> bool:
    targets = sorted({a.target for a in plan.actions})
    if confirm_database:
        typed = typer.prompt(f"type the database name ({database}) to act on {', '.join(targets)}", err=err)
        return bool(database) and typed == database
    return typer.confirm(
        f"act on {', '.join(targets)} ({len(plan.actions)} action(s))?", default=False, err=err
    )


def _plan_table(plan: RunbookPlan, console: Console) -> None:
    """The plan as a table. Every cell is a Text: server and client text (application_name, query)
    is never read as rich markup."""
    table = Table(title=Text(f"{plan.runbook}: {len(plan.actions)} action(s)"), title_justify="left")
    table.add_column("target", no_wrap=True, overflow="fold")
    table.add_column("action", overflow="fold")
    table.add_column("why", overflow="fold")
    for a in plan.actions:
        table.add_row(Text(a.target), Text(a.describe()), Text(a.why))
    console.print(table)
    for note in plan.notes:
        console.print(Text(note, style="dim"))


def _render(
    plan: RunbookPlan, outcome: Outcome | None, output: RunFormat, dry_run: bool, shown: bool
) -> None:
    """The run's document (JSON), or the plan (unless already ``shown`` before the prompt) and results."""
    if output is RunFormat.json:
        doc = {"schema": "toolkit.runbook/v1", "dry_run": dry_run, "plan": plan.to_dict()}
        if outcome is not None:
            doc["results"] = [
                {"target": a.target, "action": a.kind, "parameters": dict(a.args), "result": r}
                for a, r in outcome.results + outcome.failed
            ]
            doc["skipped"] = [
                {"target": a.target, "action": a.kind, "parameters": dict(a.args), "result": f"skipped: {r}"}
                for a, r in outcome.skipped
            ]
            doc["verified"] = outcome.verified
            doc["verification"] = outcome.verification
        typer.echo(json.dumps(doc, indent=2, default=str))
        return
    console = Console()
    if not shown:
        _plan_table(plan, console)
    if outcome is not None:
        for a, r in outcome.results:
            console.print(Text(f"done: {a.describe()} -> {r}"))
        for a, r in outcome.skipped:
            console.print(Text(f"skipped: {a.describe()} -> {r}", style="yellow"))
        for a, r in outcome.failed:
            console.print(Text(f"failed: {a.describe()} -> {r}", style="red"))
        colour = "green" if outcome.verified else "red"
        console.print(Text(f"verify: {outcome.verification}", style=colour))


@app.command("run")
def run_command(
    name: Annotated[str, typer.Argument(help="Runbook name (toolkit runbook list).")],
    inventory_path: InventoryOption = None,
    yes: Annotated[bool, typer.Option("--yes", help="Act. Without it: the plan only (dry run).")] = False,
    target: Annotated[str | None, typer.Option("--target", help="One inventory host.")] = None,
    process: Annotated[
        str | None,
        typer.Option("--process", help="One PgBouncer process (1, 2 ...) of the --target host."),
    ] = None,
    output: Annotated[RunFormat, typer.Option("--format", "-f", help="Output format.")] = RunFormat.table,
    older_than: Annotated[
        str | None, typer.Option("--older-than", help="Age above 0, such as 30s or 5m.")
    ] = None,
    database: Annotated[str | None, typer.Option("--database", help="Only this database.")] = None,
    application_name: Annotated[str | None, typer.Option("--application-name", help="Only this app.")] = None,
    app_node: Annotated[
        str | None, typer.Option("--app-node", help="Only sessions held by this app node.")
    ] = None,
    grace: Annotated[str, typer.Option("--grace", help="Wait after cancelling, such as 5s.")] = "5s",
    terminate: Annotated[
        bool, typer.Option("--terminate", help="Terminate what a cancel did not stop.")
    ] = False,
    max_sessions: Annotated[
        str, typer.Option("--max", help="Refuse to act on more sessions than this in one run.")
    ] = str(DEFAULT_MAX_SESSIONS),
    include_bypass: Annotated[
        bool,
        typer.Option(
            "--include-bypass-roles",
            help="Also act on the roles that bypass PgBouncer (database_bypass_connections).",
        ),
    ] = False,
    include_toolkit: Annotated[
        bool, typer.Option("--include-toolkit-sessions", help="Also act on the toolkit's own sessions.")
    ] = False,
    prefix: Annotated[str | None, typer.Option("--prefix", help="Redis key prefix to delete.")] = None,
    key_prefix: Annotated[str | None, typer.Option("--key-prefix", help="Django KEY_PREFIX.")] = None,
    version: Annotated[str | None, typer.Option("--version", help="Django cache VERSION.")] = None,
    bump_version: Annotated[bool, typer.Option("--bump-version", help="Retire by VERSION + 1.")] = False,
    size: Annotated[str | None, typer.Option("--size", help="New pool size.")] = None,
    max_client_conn: Annotated[
        str | None, typer.Option("--max-client-conn", help="New max_client_conn (default: the plan's).")
    ] = None,
    role: Annotated[str | None, typer.Option("--role", help="Only this PostgreSQL role's sessions.")] = None,
    maxclients: Annotated[
        str | None, typer.Option("--maxclients", help="New Redis maxclients (default: the plan's).")
    ] = None,
    rate: Annotated[str, typer.Option("--rate", help="Actions per second, at most.")] = "10",
    timeout: Annotated[str, typer.Option("--timeout", help="Seconds per target operation.")] = "5",
    secrets_dir: SecretsOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
    audit_log: Annotated[str | None, typer.Option("--audit-log", help="Audit log file (JSON lines).")] = None,
    out_file: Annotated[str | None, typer.Option("-o", "--output", help="File to write (snapshot).")] = None,
) -> None:
    """Plan a runbook, show the plan, and act only with --yes (or a confirmation on a terminal)."""
    # Imported here: the runbooks pull in psycopg and redis-py, which `toolkit --help` should not load.
    from toolkit.runbooks import find  # noqa: PLC0415
    from toolkit.runbooks.base import RunContext, RunOptions  # noqa: PLC0415
    from toolkit.runbooks.execute import act_and_verify  # noqa: PLC0415

    seconds = parse_number(timeout, "--timeout", above=0, high=MAX_TIMEOUT_S)
    book = find(name)
    opts = RunOptions(
        older_than=None if older_than is None else parse_duration(older_than, "--older-than", above=0),
        database=database,
        application_name=application_name,
        app_node=app_node,
        grace=parse_duration(grace, "--grace", high=MAX_GRACE_S),
        terminate=terminate,
        prefix=prefix,
        key_prefix=key_prefix,
        version=None if version is None else parse_count(version, "--version", low=0, high=MAX_CACHE_VERSION),
        bump_version=bump_version,
        size=None if size is None else parse_count(size, "--size", low=1, high=MAX_POOL_SIZE),
        rate=parse_number(rate, "--rate", above=0, high=MAX_RATE),
        output=out_file,
        max_sessions=parse_count(max_sessions, "--max", low=1, high=MAX_SESSIONS),
        include_bypass=include_bypass,
        include_toolkit=include_toolkit,
        max_client_conn=None
        if max_client_conn is None
        else parse_count(max_client_conn, "--max-client-conn", low=1, high=MAX_CLIENT_CONN),
        role=role,
        maxclients=None
        if maxclients is None
        else parse_count(maxclients, "--maxclients", low=1, high=MAX_REDIS_CLIENTS),
    )
    loaded = load_context(
        inventory_path, secrets_dir, Vault(vault_password_file, ask_vault_pass), announce=True
    )
    eps = loaded.endpoints
    if target is not None and not any(target in (e.name, e.address) for e in eps):
        raise RunbookUsageError(
            f"unknown target {target!r}; the inventory has: {', '.join(sorted({e.name for e in eps}))}"
        )
    if process is not None and not any(e.kind == "pgbouncer" and target in (e.name, e.address) for e in eps):
        raise RunbookUsageError(
            "--process names a process of one PgBouncer host: add --target HOST (such as pgb2)"
        )
    ctx = RunContext(
        loaded.data,
        loaded.topology,
        eps,
        loaded.secrets,
        seconds,
        target,
        audit_path(audit_log),
        process=None if process is None else parse_count(process, "--process", low=1, high=MAX_PROCESSES),
    )
    plan = book.plan(ctx, opts)
    if not plan.actions:
        _render(plan, None, output, dry_run=not yes, shown=False)
        typer.echo("nothing to do", err=True)
        raise typer.Exit(ExitStatus.OK)
    interactive = not yes and _interactive()
    if not yes and not interactive:
        _render(plan, None, output, dry_run=True, shown=False)
        typer.echo("dry run: nothing changed (add --yes to act)", err=True)
        raise typer.Exit(ExitStatus.OK)
    audit.check(ctx.audit)  # before the prompt and the first action: a log that swallows records is refused
    shown = False
    if interactive:
        # The plan before the question: on stderr with --format json, so stdout stays one document.
        _plan_table(plan, Console(stderr=output is RunFormat.json))
        shown = output is RunFormat.table
        if not _confirm(plan, database, book.INFO.confirm_database, err=output is RunFormat.json):
            typer.echo("not confirmed: nothing changed", err=True)
            raise typer.Exit(ExitStatus.OK)
    outcome = act_and_verify(book, ctx, opts, plan)
    _render(plan, outcome, output, dry_run=False, shown=shown)
    raise typer.Exit(ExitStatus.OK if outcome.ok else ExitStatus.CRITICAL)

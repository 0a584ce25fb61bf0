"""``toolkit audit async PATH``: static audits of a Django code base."""

from __future__ import annotations

import dataclasses
import enum
import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.numbers import count, count_option, seconds
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.domain.errors import InputDataError, UsageError

app = typer.Typer(help="Static audits of a Django code base.", no_args_is_help=True)
AUDIT_SCHEMA = "toolkit.audit/v1"
MAX_BYTES_LIMIT = 1024**3  # --max-bytes: at most 1 GiB per file


class AuditFormat(enum.StrEnum):
    """Output formats of ``toolkit audit queries``."""

    table = "table"
    json = "json"


class AsyncFormat(enum.StrEnum):
    """Output formats of ``toolkit audit async``: one line per finding (as a compiler prints), or more."""

    lines = "lines"
    table = "table"
    json = "json"


@app.command("async")
def async_command(
    path: Annotated[Path, typer.Argument(help="Project directory or Python file.")],
    output: Annotated[
        AsyncFormat,
        typer.Option("--format", "-f", help="Output format: one line per finding (path:line: id: message)."),
    ] = AsyncFormat.lines,
    max_bytes: Annotated[
        int, count_option("--max-bytes", "Skip files larger than this (default 1 MiB).", 1, MAX_BYTES_LIMIT)
    ] = 1024 * 1024,
) -> None:
    """Find blocking calls (sync I/O, ORM, cache) inside async functions; exit 0 clean, 1 with findings."""
    from toolkit.adapters.source_files import iter_sources  # noqa: PLC0415
    from toolkit.cli import render_findings as render  # noqa: PLC0415 - rich is slow to import
    from toolkit.domain.audit_async import analyse  # noqa: PLC0415
    from toolkit.domain.findings import Finding, worst  # noqa: PLC0415

    if not path.exists() and not path.is_symlink():
        raise UsageError(f"audit async: {path}: no such file or directory")
    findings: list[Finding] = []
    errors: list[str] = []
    parsed = 0
    progress = sys.stderr.isatty()
    for index, total, source in iter_sources(path, max_bytes):
        if progress:
            shown = source.path if len(source.path) <= 60 else "..." + source.path[-57:]
            shown = "".join(c if c.isprintable() else "?" for c in shown)  # a file name is not a command
            sys.stderr.write(f"\r\x1b[K{index}/{total} {shown}")
            sys.stderr.flush()
        if source.text is None:
            errors.append(source.error or f"{source.path}: cannot read; skipped")
            continue
        try:
            findings += analyse(source.text, source.path)
            parsed += 1
        except (SyntaxError, ValueError) as exc:
            line = getattr(exc, "lineno", None)
            where = f"{source.path}:{line}" if line else source.path
            errors.append(f"{where}: cannot parse ({getattr(exc, 'msg', exc)}); skipped")
        except (RecursionError, MemoryError) as exc:
            # Deeply nested code (x = ----...1, 1+1+...+1) exhausts the parser's stack or memory.
            errors.append(f"{source.path}: cannot parse (nested too deeply: {type(exc).__name__}); skipped")
    if progress:
        sys.stderr.write("\r\x1b[K")
    for error in errors:
        typer.echo(f"toolkit: audit async: {error}", err=True)
    if parsed == 0:
        raise InputDataError(f"audit async: {path}: no Python file could be parsed")
    status = worst(findings)
    if output is AsyncFormat.json:
        doc = {"schema": AUDIT_SCHEMA, "status": status.label, "findings": [f.to_dict() for f in findings]}
        typer.echo(json.dumps(doc, indent=2, default=str))
    elif output is AsyncFormat.table:
        render.render_table(status, [], findings, scope="static analysis")
    else:
        for f in findings:  # path:line: id: message; remedy (a file name is shown, not interpreted)
            where = "".join(c if c.isprintable() else "?" for c in f.target)
            typer.echo(f"{where}: {f.id}: {f.summary}; {f.remedy}")
        typer.echo(render.verdict(status, findings, [], "static analysis"))
    raise typer.Exit(int(status))


@app.command("queries")
def queries_command(
    inventory_path: InventoryOption = None,
    top: Annotated[
        int,
        typer.Option(
            "--top",
            help="Report at most this many statements.",
            parser=count("--top", 1, 10_000),
            metavar="N",
        ),
    ] = 10,
    output: Annotated[AuditFormat, typer.Option("--format", "-f", help="Output format.")] = AuditFormat.table,
    secrets_dir: SecretsOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds to connect and to read.",
            parser=seconds("--timeout"),
            metavar="SECONDS",
        ),
    ] = 5.0,
    min_calls: Annotated[
        int,
        typer.Option(
            "--min-calls",
            help="Ignore statements called fewer times.",
            parser=count("--min-calls", 1, 2**63 - 1),
            metavar="N",
        ),
    ] = 5,
    dbname: Annotated[
        str | None,
        typer.Option("--dbname", help="Database with the pg_stat_statements view (default: look for it)."),
    ] = None,
) -> None:
    """Rank the statements of pg_stat_statements that over-fetch; exit 0 none, 1 found, 3 unreadable."""
    from toolkit.adapters.inventory import Vault  # noqa: PLC0415
    from toolkit.adapters.statements import StatementsTarget, read_statements  # noqa: PLC0415
    from toolkit.cli import render_findings as render  # noqa: PLC0415 - rich is slow to import
    from toolkit.cli.context import load_context  # noqa: PLC0415
    from toolkit.domain.audit_queries import Thresholds, candidate_databases, rank  # noqa: PLC0415
    from toolkit.domain.findings import Severity, worst  # noqa: PLC0415
    from toolkit.domain.inventory import PGBOUNCER_GROUP  # noqa: PLC0415

    if top < 1:
        raise UsageError("must be 1 or more", "--top")
    if min_calls < 1:
        raise UsageError("must be 1 or more", "--min-calls")
    if timeout <= 0:
        raise UsageError("must be above 0", "--timeout")
    ctx = load_context(inventory_path, secrets_dir, Vault(vault_password_file, ask_vault_pass))
    data = ctx.data
    pg = ctx.of_kind("postgres")[0]
    served: list[object] = []
    for host in data.groups.get(PGBOUNCER_GROUP, ()):
        served += list(data.hostvars.get(host, {}).get("pgbouncer_databases") or [])
    password = ctx.secrets.password("postgres") or ""
    dbnames = (dbname,) if dbname else candidate_databases(pg.dbname, served)
    target = StatementsTarget(pg.address, pg.port, pg.user, password, dbnames)
    thresholds = Thresholds(min_calls=min_calls)
    read = read_statements(target, timeout, min_calls, thresholds.lowest_rows_per_call)
    findings = rank(read.statements, thresholds, target.label, top)
    status = worst(findings)
    note = None
    if read.hidden:
        # A statement the role cannot read is a statement not checked: UNKNOWN unless a worse finding.
        status = Severity.UNKNOWN if status in (Severity.OK, Severity.WARNING) else status
        note = (
            f"{read.hidden} statement(s) above the thresholds are hidden from {pg.user}, which may not read "
            f"other roles' statement text; GRANT pg_read_all_stats (or pg_monitor) TO {pg.user}"
        )
        typer.echo(f"toolkit: audit queries: {target.label}: {note}", err=True)
    scope = f"{len(read.statements)} statement(s) read from pg_stat_statements in database {read.database}"
    # Statements the parser could not read are not judged: say how many (a query that is not a query,
    # such as SET or ALTER ROLE, is not counted).
    unparsed = sum(1 for s in read.statements if s.shape.kind == "other" and s.shape.error != "not a query")
    if unparsed:
        scope += f", {unparsed} not parsed"
    if output is AuditFormat.json:
        source = {
            "target": target.label,
            "database": read.database,
            "user": pg.user,
            "statements_in_view": read.total,
            "statements_read": len(read.statements),
            "unparsed": unparsed,
            "hidden": read.hidden,
            "read_all_stats": read.read_all_stats,
            "note": note,
            "thresholds": dataclasses.asdict(thresholds),
        }
        doc = {
            "schema": AUDIT_SCHEMA,
            "status": status.label,
            "source": source,
            "findings": [f.to_dict() for f in findings],
        }
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        render.render_table(status, [], findings, scope=scope)
    raise typer.Exit(int(status))

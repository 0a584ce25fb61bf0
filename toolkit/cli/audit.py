"""``toolkit audit async PATH``: static audits of a Django code base."""

from __future__ import annotations

import enum
import json
from pathlib import Path
from typing import Annotated

import typer

from toolkit.cli.status import ExitStatus

app = typer.Typer(help="Static audits of a Django code base.", no_args_is_help=True)
AUDIT_SCHEMA = "toolkit.audit/v1"


class AuditFormat(enum.StrEnum):
    """Output formats of ``toolkit audit async``."""

    table = "table"
    json = "json"


@app.command("async")
def async_command(
    path: Annotated[Path, typer.Argument(help="Project directory or Python file.")],
    output: Annotated[AuditFormat, typer.Option("--format", "-f", help="Output format.")] = AuditFormat.table,
) -> None:
    """Find blocking calls (sync I/O, ORM, cache) inside async functions; exit 0 clean, 1 with findings."""
    from toolkit.adapters.source_files import read_sources  # noqa: PLC0415
    from toolkit.cli import render_findings as render  # noqa: PLC0415 - rich is slow to import
    from toolkit.domain.audit_async import analyse  # noqa: PLC0415
    from toolkit.domain.findings import Finding, worst  # noqa: PLC0415

    if not path.exists():
        typer.echo(f"toolkit: audit async: {path}: no such file or directory", err=True)
        raise typer.Exit(ExitStatus.USAGE)
    findings: list[Finding] = []
    errors: list[str] = []
    parsed = 0
    for source in read_sources(path):
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
    for error in errors:
        typer.echo(f"toolkit: audit async: {error}", err=True)
    if parsed == 0:
        typer.echo(f"toolkit: audit async: {path}: no Python file could be parsed", err=True)
        raise typer.Exit(ExitStatus.DATAERR)
    status = worst(findings)
    if output is AuditFormat.json:
        doc = {"schema": AUDIT_SCHEMA, "status": status.label, "findings": [f.to_dict() for f in findings]}
        typer.echo(json.dumps(doc, indent=2, default=str))
    else:
        render.render_table(status, [], findings, scope="static analysis")
    raise typer.Exit(int(status))

"""The root ``toolkit`` command: wires the command groups and maps errors to exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from toolkit.cli import audit, calibrate, doctor, plan, runbook, watch
from toolkit.cli.status import ExitStatus
from toolkit.domain.errors import InventoryError, SizingError, ToolkitError
from toolkit.domain.runbooks.base import RunbookError

app = typer.Typer(
    name="toolkit",
    help="Provision, check and fix Django on PostgreSQL behind PgBouncer, with Redis as the cache.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,  # errors are one line; --debug shows a plain traceback
)
app.command(name="plan")(plan.plan_command)
app.command(name="doctor")(doctor.doctor_command)
app.command(name="watch")(watch.watch_command)
app.command(name="calibrate")(calibrate.calibrate_command)
app.add_typer(runbook.app, name="runbook")
app.add_typer(audit.app, name="audit")


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an unexpected error.")
    ] = False,
) -> None:
    """Operations toolkit for Django, PostgreSQL, PgBouncer and Redis."""


def _exit_code(exc: ToolkitError) -> ExitStatus:
    if isinstance(exc, SizingError):
        return ExitStatus.CRITICAL
    if isinstance(exc, InventoryError):
        return ExitStatus.DATAERR
    if isinstance(exc, RunbookError):
        return ExitStatus.USAGE
    return ExitStatus.UNKNOWN


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run, and turn a known error into one line and a code."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        # Without standalone mode the parser returns an Exit's code instead of raising it.
        code = app(args=args, standalone_mode=False)
    except ToolkitError as exc:
        if debug:
            raise
        print(f"toolkit: {exc}", file=sys.stderr)
        sys.exit(_exit_code(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("toolkit: aborted", file=sys.stderr)
        sys.exit(ExitStatus.USAGE)
    except Exception as exc:  # the parser's usage errors, and anything unexpected
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        # Matched by name: typer vendors its own copy of click, so click's classes are not importable.
        if "ClickException" in kinds:
            message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
            hint = " (see --help)" if "UsageError" in kinds else ""
            print(f"toolkit: {message}{hint}", file=sys.stderr)
            sys.exit(ExitStatus.USAGE if "UsageError" in kinds else ExitStatus.UNKNOWN)
        if debug:
            raise
        print(
            f"toolkit: unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(ExitStatus.UNKNOWN)
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)

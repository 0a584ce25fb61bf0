"""The root ``toolkit`` command: wires the command groups and maps errors to exit codes.

Start-up time is part of the interface (cron, CI and on-call run the toolkit many times a day), so the
commands are registered lazily: :data:`COMMANDS` names each command's module, and that module is imported
only when its command runs or shows its own help. ``toolkit --help`` lists the commands from the one-line
summaries in :data:`COMMANDS` (a CLI test checks that they match each command's docstring) and imports
none of them, and ``toolkit plan`` imports neither the database drivers nor the rest of the commands.
To add a command or a group: write its module, then add one :class:`LazyCommand` line.

Help is plain text (``rich_markup_mode=None``): typer's rich help imports rich and markdown-it, which
alone cost as much as importing typer itself.

``--debug`` is read in one place, :func:`run`, wherever it stands on the command line (before ``--``):
``toolkit --debug plan`` and ``toolkit plan -i X --debug`` are the same. Other typer apps (the
checkout's lab commands) run through :func:`run` too, for the same one-line errors and exit codes.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from typing import Annotated, Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

from toolkit.cli import coercion
from toolkit.cli.status import ExitStatus
from toolkit.domain.errors import (
    FailedError,
    InputDataError,
    RefusedError,
    SizingError,
    ToolkitError,
    UnreachableError,
    UsageError,
)


@dataclass(frozen=True)
class LazyCommand:
    """A command (``attribute`` is a function) or a command group (a ``typer.Typer``) in ``module``."""

    name: str
    module: str
    attribute: str
    summary: str  # the first line of the command's help, shown by `toolkit --help`


COMMANDS = (
    LazyCommand(
        "plan",
        "toolkit.cli.plan",
        "plan_command",
        "Show the pool plan and connection budget computed from the inventory.",
    ),
    LazyCommand(
        "doctor",
        "toolkit.cli.doctor",
        "doctor_command",
        "Report every way the live system departs from a healthy one; exit 0/1/2/3.",
    ),
    LazyCommand(
        "watch",
        "toolkit.cli.watch",
        "watch_command",
        "Show every pool against its plan (by pressure, waiting clients by app node) and PostgreSQL's slots.",
    ),
    LazyCommand(
        "calibrate",
        "toolkit.cli.calibrate",
        "calibrate_command",
        "Advise pool sizes: --sweep finds the knee and its inventory line; alone, the hold factor.",
    ),
    LazyCommand(
        "runbook",
        "toolkit.cli.runbook",
        "app",
        "Guarded remediation steps: dry run first, --yes to act, audited, verified.",
    ),
    LazyCommand("audit", "toolkit.cli.audit", "app", "Static audits of a Django code base."),
)
DISTRIBUTION = "pgbouncer-django-toolkit"  # the name pip knows; the import package is `toolkit`
DEBUG = "--debug"


class _Pending(TyperCommand):
    """Stands in for a command whose module is not imported yet: its name and summary only."""

    def __init__(self, spec: LazyCommand) -> None:
        super().__init__(spec.name, help=spec.summary, rich_markup_mode=None)
        self.spec = spec


def load_command(spec: LazyCommand) -> TyperCommand | TyperGroup:
    """Import the command's module and build its click command, with plain-text help."""
    target = getattr(importlib.import_module(spec.module), spec.attribute)
    if isinstance(target, typer.Typer):
        command: object = typer.main.get_group(target)
    else:
        single = typer.Typer(add_completion=False)
        single.command(name=spec.name)(target)
        command = typer.main.get_command(single)
    if not isinstance(command, TyperCommand | TyperGroup):
        raise TypeError(f"{spec.module}.{spec.attribute} is not a typer command or group")
    command.name = spec.name
    _plain_help(command)
    return command


def _plain_help(command: TyperCommand | TyperGroup) -> None:
    command.rich_markup_mode = None
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            if isinstance(sub, TyperCommand | TyperGroup):
                _plain_help(sub)


class LazyGroup(TyperGroup):
    """The root group: every command of :data:`COMMANDS` is loaded the first time it is looked up."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        for spec in COMMANDS:
            self.commands.setdefault(spec.name, _Pending(spec))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if isinstance(command, _Pending):
            command = self.commands[cmd_name] = load_command(command.spec)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """List the commands from their summaries, without importing any of them."""
        rows = [(name, cmd) for name, cmd in self.commands.items() if not cmd.hidden]
        if rows:
            limit = formatter.width - 6 - max(len(name) for name, _ in rows)
            with formatter.section("Commands"):
                formatter.write_dl([(name, cmd.get_short_help_str(limit)) for name, cmd in rows])


app = typer.Typer(
    name="toolkit",
    cls=LazyGroup,
    help="Provision, check and fix Django on PostgreSQL behind PgBouncer, with Redis as the cache.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion, --show-completion (bash, zsh, fish, PowerShell)
    rich_markup_mode=None,  # plain help: typer's rich help imports rich and markdown-it
    pretty_exceptions_enable=False,  # errors are one line; --debug shows a plain traceback
)


def _show_version(value: bool) -> None:
    """``--version``: the installed distribution's version, from its metadata."""
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415 - only for --version

    try:
        typer.echo(f"toolkit {version(DISTRIBUTION)} ({DISTRIBUTION})")
    except PackageNotFoundError:
        raise ToolkitError(
            f"version unknown: the distribution {DISTRIBUTION} is not installed; "
            "install it with 'pip install .'"
        ) from None
    raise typer.Exit(ExitStatus.OK)


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option(
            DEBUG, help="Show the traceback of an unexpected error (also after the command: plan --debug)."
        ),
    ] = False,
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="Show the version and exit."),
    ] = False,
) -> None:
    """Operations toolkit for Django, PostgreSQL, PgBouncer and Redis."""


@dataclass(frozen=True)
class ErrorExit:
    """One error class, the exit status it stands for, and what that means (README's exit-code table)."""

    error: type[ToolkitError]
    status: ExitStatus
    meaning: str


# The one mapping from error classes to exit statuses: the first class ``exc`` is an instance of wins,
# so subclasses come before their bases. README's exit-code table lists exactly these meanings (a unit
# test parses it); the parser's own usage errors (an unknown option, a missing argument) are 64 too.
ERROR_EXITS = (
    ErrorExit(
        UsageError, ExitStatus.USAGE, "a bad command line or a malformed runbook request, nothing changed"
    ),
    ErrorExit(InputDataError, ExitStatus.DATAERR, "invalid input data: the inventory, settings or config"),
    ErrorExit(SizingError, ExitStatus.CRITICAL, "the plan is infeasible"),
    ErrorExit(
        RefusedError, ExitStatus.CRITICAL, "a runbook refused because of the live state, nothing changed"
    ),
    ErrorExit(FailedError, ExitStatus.CRITICAL, "an action failed or its effect could not be verified"),
    ErrorExit(
        UnreachableError, ExitStatus.UNKNOWN, "a target could not be reached or read, or a tool is missing"
    ),
    ErrorExit(ToolkitError, ExitStatus.UNKNOWN, "any other error the toolkit reports in one line"),
)


def exit_status(exc: ToolkitError) -> ExitStatus:
    """The exit status of a known error, from :data:`ERROR_EXITS`."""
    return next(e.status for e in ERROR_EXITS if isinstance(exc, e.error))


def error_line(prog: str, exc: ToolkitError) -> str:
    """The one line printed for a known error; a usage error naming its flag points at --help."""
    text = " ".join(str(exc).splitlines()) or type(exc).__name__
    hint = " (see --help)" if isinstance(exc, UsageError) and exc.param else ""
    return f"{prog}: {text}{hint}"


def split_debug(args: list[str]) -> tuple[bool, list[str]]:
    """Whether ``--debug`` is anywhere before ``--``, and the arguments without it.

    The one mechanism behind ``--debug``: taken out here, so every command accepts it in any place.

    >>> split_debug(["plan", "-i", "inv", "--debug"])
    (True, ['plan', '-i', 'inv'])
    >>> split_debug(["runbook", "run", "x", "--", "--debug"])
    (False, ['runbook', 'run', 'x', '--', '--debug'])
    """
    end = args.index("--") if "--" in args else len(args)
    head = [a for a in args[:end] if a != DEBUG]
    return len(head) < end, head + args[end:]


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: run, and turn a known error into one line and a code."""
    run(app, sys.argv[1:] if argv is None else argv)


def run(command: typer.Typer, argv: list[str], prog: str = "toolkit") -> NoReturn:
    """Run ``command`` on ``argv``; a known error becomes one line on stderr and its exit code."""
    debug, args = split_debug(argv)
    coercion.install()  # str, bool and Enum options without pydantic (toolkit/cli/coercion.py)
    try:
        # Without standalone mode the parser returns an Exit's code instead of raising it.
        code = command(args=args, prog_name=prog, standalone_mode=False)
    except ToolkitError as exc:
        if debug:
            raise
        print(error_line(prog, exc), file=sys.stderr)
        sys.exit(exit_status(exc))
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print(f"{prog}: aborted", file=sys.stderr)
        sys.exit(ExitStatus.USAGE)
    except Exception as exc:  # the parser's usage errors, and anything unexpected
        kinds = {cls.__name__ for cls in type(exc).__mro__}
        # Matched by name: typer vendors its own copy of click, so click's classes are not importable.
        if "ClickException" in kinds:
            message = " ".join(exc.format_message().split())  # type: ignore[attr-defined]
            hint = " (see --help)" if "UsageError" in kinds else ""
            print(f"{prog}: {message}{hint}", file=sys.stderr)
            sys.exit(ExitStatus.USAGE if "UsageError" in kinds else ExitStatus.UNKNOWN)
        if debug:
            raise
        print(
            f"{prog}: unexpected error: {type(exc).__name__}: {exc} (run with --debug for the traceback)",
            file=sys.stderr,
        )
        sys.exit(ExitStatus.UNKNOWN)
    sys.exit(code if isinstance(code, int) else ExitStatus.OK)

"""Runbooks pgbouncer-kill-database, pgbouncer-disable and pgbouncer-enable: one database, admin only.

Each needs --database, and its interactive confirmation must type that name. KILL drops every client
and server connection of the database and leaves it paused until RESUME (pgbouncer-resume).
"""

from __future__ import annotations

from toolkit.adapters.pgbouncer import AdminConsole, admin_command
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.pgbouncer import check_database, plan_database_command
from toolkit.runbooks import pgb
from toolkit.runbooks.base import RunContext, RunOptions

_PARAMS = ("--database", "--target", "--process", "--timeout")


class DatabaseCommand:
    """A runbook that runs one admin command (KILL, DISABLE, ENABLE) on one database."""

    def __init__(self, info: RunbookInfo, command: str) -> None:
        self.INFO = info
        self.command = command

    def plan(self, ctx: RunContext, opts: RunOptions) -> RunbookPlan:
        """Check --database against what PgBouncer serves, and plan the command on each target."""
        targets = pgb.admin_targets(ctx)
        database = check_database(opts.database, pgb.served(ctx), self.INFO.name)
        return plan_database_command(self.INFO.name, self.command, [t.label for t in targets], database)

    def act(self, ctx: RunContext, action: Action, opts: RunOptions) -> str:
        """Run the command on one target."""
        database = str(action.args["database"])
        with AdminConsole(pgb.by_label(ctx, action.target), ctx.timeout) as console:
            console.command(admin_command(self.command, database))
        return f"{self.command} {database}: done"

    def verify(self, ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
        """SHOW DATABASES: KILL leaves it paused, DISABLE disabled, ENABLE enabled."""
        database = str(opts.database)
        column, wanted = {"KILL": ("paused", True), "DISABLE": ("disabled", True)}.get(
            self.command, ("disabled", False)
        )
        wrong = []
        for t in pgb.admin_targets(ctx):
            f = pgb.flags(t, ctx.timeout).get(database)
            if f is None or getattr(f, column) != wanted:
                wrong.append(t.label)
        state = f"{column} = {int(wanted)}"
        if wrong:
            return False, f"{database} is not {state} on {', '.join(wrong)}"
        extra = "; clients queue until pgbouncer-resume" if self.command == "KILL" else ""
        return True, f"{database}: {state} (SHOW DATABASES){extra}"


KILL = DatabaseCommand(
    RunbookInfo(
        "pgbouncer-kill-database",
        "KILL one database's connections in PgBouncer (it stays paused until RESUME)",
        params=_PARAMS,
        confirm_database=True,
    ),
    "KILL",
)
DISABLE = DatabaseCommand(
    RunbookInfo(
        "pgbouncer-disable",
        "DISABLE new client connections to one database",
        params=_PARAMS,
        confirm_database=True,
    ),
    "DISABLE",
)
ENABLE = DatabaseCommand(
    RunbookInfo(
        "pgbouncer-enable",
        "ENABLE client connections to one database again",
        params=_PARAMS,
        confirm_database=True,
    ),
    "ENABLE",
)

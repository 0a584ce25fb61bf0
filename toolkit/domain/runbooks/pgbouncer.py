"""Plans for the PgBouncer runbooks: pause and resume, reload, reconnect, resize, kill/disable/enable.

Pure: the executor (toolkit/runbooks/pgbouncer_*.py) reads the admin console and PostgreSQL, passes
plain values here, and runs what comes back. Rows are read by column name, never by position: newer
PgBouncers add and rename columns.
"""

from __future__ import annotations

import configparser
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace

from toolkit.domain.errors import RefusedError, SizingError
from toolkit.domain.models import Topology
from toolkit.domain.pgbouncer_rows import DatabaseRow
from toolkit.domain.runbooks.base import Action, RunbookPlan, RunbookUsageError
from toolkit.domain.sizing import plan as size_plan
from toolkit.domain.snapshot import Backend

DEFAULT_PAUSE_OLDER_THAN = 10.0  # seconds: a transaction this old makes pgbouncer-pause refuse
ADMIN_DATABASE = "pgbouncer"
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$-]*")


def check_database(database: str | None, served: Collection[str], runbook: str) -> str:
    """The --database a runbook acts on: required, a plain name, served by PgBouncer, not the console.

    >>> check_database("app", {"app"}, "pgbouncer-disable")
    'app'
    >>> check_database("shop", {"app"}, "pgbouncer-disable")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: pgbouncer-disable: PgBouncer serves no database 'shop' ...
    """
    if not database:
        raise RunbookUsageError(f"{runbook} needs --database (one of: {', '.join(sorted(served)) or 'none'})")
    if database == ADMIN_DATABASE:
        raise RunbookUsageError(
            f"{runbook}: {ADMIN_DATABASE!r} is the admin console, not a database to act on"
        )
    if not _NAME.fullmatch(database):
        raise RunbookUsageError(f"{runbook}: --database {database!r} is not a database name")
    if database not in served:
        raise RunbookUsageError(
            f"{runbook}: PgBouncer serves no database {database!r} (it serves: {', '.join(sorted(served))})"
        )
    return database


def long_transactions(
    backends: Sequence[Backend], databases: Collection[str], superusers: Collection[str]
) -> list[Backend]:
    """Client transactions open now in the pooled databases, oldest first (PAUSE waits for them)."""
    open_ = [
        b
        for b in backends
        if b.backend_type == "client backend"
        and b.datname in databases
        and b.usename not in superusers
        and b.xact_age is not None
    ]
    return sorted(open_, key=lambda b: -(b.xact_age or 0.0))


def plan_pause(
    targets: Sequence[str],
    open_transactions: Sequence[Backend],
    *,
    database: str | None,
    older_than: float,
    timeout: float,
) -> RunbookPlan:
    """PAUSE every target in parallel, each within ``timeout``; refuse while old transactions are open.

    The refusal is a RefusedError (exit 2): the live state, not the command line, stands in the way.

    >>> b = Backend(7, "app", "app", "web", "", "client backend", "idle in transaction",
    ...             30.0, 30.0, 30.0, "Client", (), "UPDATE ...")
    >>> plan_pause(["pgb"], [b], database=None, older_than=10, timeout=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.RefusedError: pgbouncer-pause: 1 transaction(s) open for at least 10 s ...
    >>> len(plan_pause(["pgb"], [b], database=None, older_than=60, timeout=5).actions)
    1
    """
    if not targets:
        raise RunbookUsageError("pgbouncer-pause: no PgBouncer selected")
    old = [b for b in open_transactions if (b.xact_age or 0.0) >= older_than]
    if old:
        pids = ", ".join(f"{b.pid} ({b.xact_age:.0f} s, {b.state})" for b in old[:5])
        raise RefusedError(
            f"pgbouncer-pause: {len(old)} transaction(s) open for at least {older_than:g} s would hold the "
            f"PAUSE (pid {pids}); end them first (toolkit runbook run terminate-idle-transactions or "
            "cancel-long-queries), or raise --older-than"
        )
    scope = database or "every database"
    notes = [
        f"PAUSE {scope} on {len(targets)} PgBouncer(s) in parallel, each within {timeout:g} s; on a "
        "timeout or any failure the pending PAUSE session is dropped and every PgBouncer is resumed",
        "clients queue (they are not refused) until pgbouncer-resume",
    ]
    if database is not None:
        notes.append(
            "PgBouncer 1.18: after a per-database RESUME, clients that queued during the pause wait up to "
            "server_login_retry more (15 s by default); without --database they go on at once"
        )
    if open_transactions:
        notes.append(f"{len(open_transactions)} younger transaction(s) open: PAUSE waits for them to finish")
    action = Action(
        ", ".join(targets),
        "PAUSE",
        {"database": scope, "timeout": timeout, "targets": len(targets)},
        "hold new transactions while the database is worked on (server connections released)",
    )
    return RunbookPlan("pgbouncer-pause", (action,), tuple(notes))


def plan_resume(
    paused: Mapping[str, Mapping[str, DatabaseRow]], *, database: str | None, timeout: float
) -> RunbookPlan:
    """RESUME every target where a database (or the one named) is paused, in parallel.

    >>> flags = {"pgb": {"app": DatabaseRow("app", paused=True)}}
    >>> plan_resume(flags, database=None, timeout=5).actions[0].target
    'pgb'
    >>> plan_resume({"pgb": {"app": DatabaseRow("app")}}, database=None, timeout=5).actions
    ()
    """
    hit = sorted(
        t
        for t, dbs in paused.items()
        if any(f.paused for f in dbs.values() if database is None or f.name == database)
    )
    scope = database or "every database"
    notes = (f"paused: {', '.join(hit) or 'nothing'}",)
    if not hit:
        return RunbookPlan("pgbouncer-resume", (), notes)
    action = Action(
        ", ".join(hit),
        "RESUME",
        {"database": scope, "timeout": timeout, "targets": len(hit)},
        "let queued clients through again",
    )
    return RunbookPlan("pgbouncer-resume", (action,), notes)


def config_diff(
    before: Mapping[str, str], after: Mapping[str, str]
) -> list[tuple[str, str | None, str | None]]:
    """(key, before, after) for every setting that changed.

    >>> config_diff({"a": "1", "b": "2"}, {"a": "1", "b": "3", "c": "4"})
    [('b', '2', '3'), ('c', None, '4')]
    """
    keys = sorted(set(before) | set(after))
    return [(k, before.get(k), after.get(k)) for k in keys if before.get(k) != after.get(k)]


def parse_ini(text: str) -> dict[str, str]:
    """The ``[pgbouncer]`` section of a pgbouncer.ini (values as written, keys lower-case).

    ``%include`` lines must already be expanded (the caller reads files); any left are skipped.

    >>> parse_ini("[databases]\\napp = host=x\\n[pgbouncer]\\nlisten_port = 6432\\n%include x.ini\\n")
    {'listen_port': '6432'}
    """
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("%")]
    parser = configparser.ConfigParser(interpolation=None, strict=False, comment_prefixes=(";", "#"))
    try:
        parser.read_string("\n".join(lines))
    except configparser.Error as exc:
        raise ValueError(f"unreadable PgBouncer config: {exc}") from None
    if not parser.has_section("pgbouncer"):
        return {}
    return {k.lower(): v.strip() for k, v in parser.items("pgbouncer")}


def restart_needed(
    live: Mapping[str, tuple[str, bool]], file_values: Mapping[str, str]
) -> list[tuple[str, str, str]]:
    """(key, live, file) for restart-only settings (``changeable`` no) the file sets differently.

    >>> restart_needed({"listen_port": ("6432", False), "max_client_conn": ("50", True)},
    ...                {"listen_port": "6433", "max_client_conn": "60"})
    [('listen_port', '6432', '6433')]
    """
    out = []
    for key, wanted in sorted(file_values.items()):
        if key in live and not live[key][1] and live[key][0].strip() != wanted.strip():
            out.append((key, live[key][0], wanted))
    return out


def plan_reload(targets: Sequence[str]) -> RunbookPlan:
    """RELOAD each target; the diff of SHOW CONFIG before and after is shown when verifying."""
    actions = tuple(
        Action(t, "RELOAD", {}, "re-read the config file (this reverts any live SET)") for t in targets
    )
    notes = (
        "SHOW CONFIG is read before and after; every change is reported as (key, before, after)",
        "restart-only settings (changeable = no) that differ from the file are reported: they need a "
        "restart, which RELOAD cannot do",
    )
    return RunbookPlan("pgbouncer-reload", actions, notes)


def plan_reconnect(targets: Sequence[str], database: str | None) -> RunbookPlan:
    """RECONNECT then WAIT_CLOSE on each target (after a failover or a schema change)."""
    args = {"database": database} if database else {}
    actions = []
    for t in targets:
        actions.append(Action(t, "RECONNECT", args, "close server connections as they become free"))
        actions.append(Action(t, "WAIT_CLOSE", args, "wait until every old server connection is closed"))
    notes = (
        f"{database or 'every database'}: clients keep their sessions; new server connections are opened "
        "to the current server",
    )
    return RunbookPlan("pgbouncer-reconnect", tuple(actions), notes)


def resized_topology(topology: Topology, hosts: Collection[str], size: int) -> Topology:
    """The topology with ``default_pool_size`` pinned to ``size`` on ``hosts``."""
    pgbouncers = tuple(
        replace(h, overrides=replace(h.overrides, default_pool_size=size)) if h.name in hosts else h
        for h in topology.pgbouncers
    )
    return replace(topology, pgbouncers=pgbouncers)


def plan_resize(
    topology: Topology,
    targets: Mapping[str, str] | Sequence[tuple[str, str]],
    size: int,
    live: Mapping[str, str],
) -> RunbookPlan:
    """SET default_pool_size = ``size`` on each target (host -> label, or (host, label) pairs: one per
    process of a host that runs several), refused beyond the budget.

    ``live`` is each label's current default_pool_size. The capacity budget is the one provisioning
    uses (toolkit.domain.sizing.plan) with the inventory's pool size replaced by ``size``.
    """
    if size < 1:
        raise RunbookUsageError(f"pgbouncer-resize-pool: --size must be at least 1, got {size}")
    pairs = sorted(targets.items() if isinstance(targets, Mapping) else targets)
    if not pairs:
        raise RunbookUsageError("pgbouncer-resize-pool: no PgBouncer selected")
    try:
        budget = size_plan(resized_topology(topology, {host for host, _ in pairs}, size)).budget
    except SizingError as exc:
        raise RefusedError(f"pgbouncer-resize-pool: refused, nothing changed: {exc}") from None
    used = f"{budget.pgbouncer_server_connections} of {budget.usable} usable server connections"
    actions = tuple(
        Action(
            label,
            "SET",
            {"default_pool_size": size, "was": live.get(label, "?")},
            f"within the budget: {used}",
        )
        for _, label in pairs
    )
    notes = (
        "a live SET lasts until the next RELOAD or restart, which reverts it to the file's value",
        f"to make it permanent, set in the inventory (group_vars/pgbouncer): "
        f"pgbouncer_default_pool_size: {size}, then run the playbook",
    )
    return RunbookPlan("pgbouncer-resize-pool", actions, notes)


DATABASE_COMMANDS = {
    "KILL": "drop every client and server connection of the database now",
    "DISABLE": "refuse new client connections to the database (connected clients stay)",
    "ENABLE": "accept new client connections to the database again",
}


def plan_database_command(runbook: str, command: str, targets: Sequence[str], database: str) -> RunbookPlan:
    """KILL, DISABLE or ENABLE one database on each target.

    >>> p = plan_database_command("pgbouncer-kill-database", "KILL", ["pgb"], "app")
    >>> p.actions[0].describe(), "paused until" in p.notes[0]
    ('KILL(database=app)', True)
    """
    if command not in DATABASE_COMMANDS:
        raise RunbookUsageError(f"{runbook}: unknown command {command!r}")
    actions = tuple(Action(t, command, {"database": database}, DATABASE_COMMANDS[command]) for t in targets)
    notes = {
        "KILL": (
            f"KILL leaves {database} paused until RESUME: clients queue until "
            f"'toolkit runbook run pgbouncer-resume --database {database} --yes'",
        ),
        "DISABLE": (f"undo with pgbouncer-enable --database {database}",),
        "ENABLE": (),
    }[command]
    return RunbookPlan(runbook, actions, notes)

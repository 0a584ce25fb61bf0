"""Shared by the PgBouncer runbooks: admin targets, SHOW DATABASES flags, time-limited PAUSE, RESUME.

The admin user comes from the inventory (``toolkit_pgbouncer_admin_user``, resolved with its default in
:mod:`toolkit.domain.targets`);
its password from ``TOOLKIT_PGBOUNCER_ADMIN_PASSWORD`` or the secrets file ``pgbouncer_admin_password``.

PAUSE is the dangerous one (pgbouncer issue 715): a RESUME sent while a PAUSE is still pending can leave
that PAUSE hung, and a PAUSE stays in force when its admin session drops. So every PAUSE runs on its own
admin session in a thread; on timeout that session is dropped first, and only then is RESUME sent, on a
new session, and a PAUSE counts as done only when SHOW POOLS shows its servers released (see
:func:`pause`). PgBouncer 1.18's SHOW DATABASES ``paused`` column shows only per-database pauses (a bare
PAUSE leaves it 0), so the runbooks pause and resume database by database, which SHOW DATABASES verifies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from toolkit.adapters.deadline import Job
from toolkit.adapters.deadline import run as run_all
from toolkit.adapters.errors import TargetError
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget, admin_command
from toolkit.domain.pgbouncer_rows import DatabaseRow
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.runbooks.pgbouncer import ADMIN_DATABASE
from toolkit.domain.runbooks.processes import selected_processes
from toolkit.runbooks.base import RunContext

T = TypeVar("T")


def admin_targets(ctx: RunContext) -> list[AdminTarget]:
    """The admin consoles of the PgBouncer processes --target (and --process) select, all without them.

    A host that runs several processes on one port gives one target per process (each session is
    reconnected until it reaches its process: toolkit.adapters.pgbouncer.AdminConsole); a one-process
    host gives one target, whichever process answers.
    """
    selected = ctx.selected("pgbouncer")
    if not selected:
        known = ", ".join(e.name for e in ctx.endpoints if e.kind == "pgbouncer") or "none"
        raise RunbookUsageError(f"no PgBouncer matches --target {ctx.target!r} (the inventory has: {known})")
    password = ctx.secrets.password("pgbouncer_admin") or ""
    processes = {h.name: h.processes for h in ctx.topology.pgbouncers}
    out = []
    for ep in selected:
        for number in selected_processes(ep.name, processes.get(ep.name, 1), ctx.process):
            out.append(AdminTarget(ep.address, ep.port, ep.admin_user, password, ep.name, number))
    return out


def by_label(ctx: RunContext, label: str) -> AdminTarget:
    """The admin target an action names."""
    return next(t for t in admin_targets(ctx) if t.label == label)


def labels(spec: str) -> list[str]:
    """The targets of an aggregate action ("a, b")."""
    return [s.strip() for s in spec.split(",") if s.strip()]


def served(ctx: RunContext) -> set[str]:
    """Databases the selected PgBouncers serve, from the inventory."""
    hosts = {t.name for t in admin_targets(ctx)}
    return {d for h in ctx.topology.pgbouncers if h.name in hosts for d in h.databases}


def flags(target: AdminTarget, timeout: float) -> dict[str, DatabaseRow]:
    """SHOW DATABASES by name (paused, disabled ...), the admin console itself left out."""
    with AdminConsole(target, timeout) as console:
        return {r.name: r for r in console.databases() if r.name != ADMIN_DATABASE}


def in_parallel(
    work: Callable[[AdminTarget], T], targets: Sequence[AdminTarget], deadline: float
) -> list[tuple[AdminTarget, T | None, BaseException | None]]:
    """Run ``work`` on every target at once; each result or error, or a timeout after ``deadline`` s."""
    jobs = [
        Job(t.label, lambda t=t: work(t), deadline, "the admin command", "frozen?")  # type: ignore[misc]
        for t in targets
    ]
    return [(t, o.value, o.error) for t, o in zip(targets, run_all(jobs), strict=True)]


def timed(target: AdminTarget, commands: Sequence[str], timeout: float, why: str) -> str:
    """Run ``commands`` on their own session, all within ``timeout``; on timeout drop that session.

    ``why`` is what a timeout most likely means, for the message.
    """
    start = time.monotonic()
    session = AdminConsole(target, timeout)

    def send() -> None:
        for command in commands:
            session.command(command)

    during = "; ".join(commands)
    job = Job(target.label, send, timeout, during, f"{why}; the session was dropped")
    (outcome,) = run_all([job], overall=max(0.0, timeout - (time.monotonic() - start)))  # from the connect
    if outcome.timed_out:
        session.drop()  # first: a RESUME while a PAUSE is pending could leave it hung
        outcome.wait(1.0)
    session.close()
    outcome.result()
    return f"{during} in {time.monotonic() - start:.2f} s"


def pause(target: AdminTarget, databases: Sequence[str], timeout: float, whole: bool = False) -> str:
    """PAUSE each database (and, if ``whole``, the pooler) on its own session within ``timeout``.

    On timeout the session is dropped. ``whole`` adds a bare PAUSE after the per-database ones: the
    per-database PAUSE makes SHOW DATABASES show it, the bare one avoids a 1.18 quirk (measured): after
    a per-database RESUME alone, clients that queued during the pause wait another server_login_retry
    (15 s) before they get a server; after a bare RESUME they go on at once.

    PgBouncer 1.18 can answer a pending PAUSE early: once a WAIT_CLOSE has been used, the end of the
    wait answers every admin session waiting for a reply (measured: the PAUSE got "WAIT_CLOSE" while a
    server connection was still in a transaction). So the reply is not trusted: the PAUSE is done only
    when SHOW POOLS shows no server connection of those databases still in use.
    """
    start = time.monotonic()
    commands = [admin_command("PAUSE", db) for db in databases] + ([admin_command("PAUSE")] if whole else [])
    timed(target, commands, timeout, "open transactions held the PAUSE")
    busy = _busy_servers(target, databases, max(0.0, timeout - (time.monotonic() - start)))
    if busy:
        raise TargetError(
            target.label,
            "; ".join(commands),
            f"timed out after {timeout:g} s",
            f"{busy} server connection(s) still in a transaction (PAUSE was answered early)",
        )
    return f"paused {', '.join(databases)} in {time.monotonic() - start:.2f} s"


def _busy_servers(target: AdminTarget, databases: Sequence[str], within: float) -> int:
    """Server connections of ``databases`` still in use, polled until none or ``within`` s passed."""
    end = time.monotonic() + within
    with AdminConsole(target, max(within, 1.0)) as console:
        while True:
            busy = sum(p.sv_busy for p in console.pools() if p.database in databases)
            if busy == 0 or time.monotonic() >= end:
                return busy
            time.sleep(0.1)


def resume(target: AdminTarget, databases: Sequence[str], timeout: float, whole: bool = False) -> str:
    """RESUME (if ``whole``, the pooler first) and each database on a new session; not paused is fine."""
    done, already = [], []
    with AdminConsole(target, timeout) as console:
        for name, command in ([("pooler", admin_command("RESUME"))] if whole else []) + [
            (db, admin_command("RESUME", db)) for db in databases
        ]:
            try:
                console.command(command)
                done.append(name)
            except TargetError as exc:
                if "not paused" not in exc.cause:
                    raise
                already.append(name)
    parts = [
        f"resumed {', '.join(done)}" if done else "",
        f"not paused: {', '.join(already)}" if already else "",
    ]
    return "; ".join(p for p in parts if p)

"""Runbook pgbouncer-raise-max-client-conn: SET max_client_conn live, within the open-files limit.

The limit is read live where it can be: the process's ``/proc/PID/limits`` (its pid from the pidfile
SHOW CONFIG names), else ``systemctl show -p LimitNOFILE`` of its unit, over SSH as the inventory
reaches the host (toolkit.adapters.ssh; ``sudo -n`` reads the pidfile). When neither answers, the
plan's LimitNOFILE, which the pgbouncer role deploys, stands in, and the plan's notes say so. The budget
itself is pure: toolkit.domain.runbooks.limits.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from toolkit.adapters import ssh
from toolkit.adapters.errors import TargetError
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget, set_command
from toolkit.domain.errors import SizingError
from toolkit.domain.numbers import as_int
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.limits import ProcessLimits, parse_limits, plan_raise
from toolkit.domain.sizing import plan as size_plan
from toolkit.runbooks import pgb
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "pgbouncer-raise-max-client-conn",
    "SET max_client_conn live, refused beyond the open-files limit; prints the permanent change",
    fixes=("capacity.client_demand_exceeds_max_client_conn", "pgbouncer.max_client_conn_near_limit"),
    params=("--max-client-conn", "--target", "--process", "--timeout"),
)

# Run by `sudo -n sh -s -- PIDFILE UNIT` on the PgBouncer host: the soft limit of the running process,
# else what systemd starts the unit with. Arguments, not secrets: the script comes on stdin.
_READ_LIMIT = """\
pid=$(cat "$1" 2>/dev/null) && [ -n "$pid" ] && grep '^Max open files' "/proc/$pid/limits" && exit 0
systemctl show -p LimitNOFILE --value "$2" 2>/dev/null
"""


def _unit(pidfile: str) -> str:
    """The systemd unit the role gives the process of ``pidfile`` (pgbouncer, pgbouncer-N).

    >>> _unit("/run/postgresql/pgbouncer-2.pid"), _unit("/run/postgresql/pgbouncer.pid"), _unit("/x/y.pid")
    ('pgbouncer-2.service', 'pgbouncer.service', 'pgbouncer.service')
    """
    stem = PurePosixPath(pidfile).stem if pidfile else "pgbouncer"
    return f"{stem if stem.startswith('pgbouncer') else 'pgbouncer'}.service"


def _planned_nofile(ctx: RunContext) -> dict[str, int]:
    try:
        return {p.host: p.nofile.value for p in size_plan(ctx.topology).pgbouncer}
    except SizingError:
        return {}


def _fd_limit(ctx: RunContext, t: AdminTarget, pidfile: str) -> tuple[int | None, str]:
    """The process's open-files limit and where it was read; the plan's LimitNOFILE when unreadable."""
    hostvars = ctx.data.hostvars.get(t.name, {})
    why = "no pidfile in SHOW CONFIG"
    if pidfile:
        try:
            if ssh.is_local(t.name, hostvars):
                pid = Path(pidfile).read_text().strip()
                text = Path(f"/proc/{pid}/limits").read_text()
            else:
                target = ssh.ssh_target(t.name, hostvars, ssh.inventory_dir(ctx.data.source))
                done = ssh.run(
                    target,
                    ["sudo", "-n", "sh", "-s", "--", pidfile, _unit(pidfile)],
                    _READ_LIMIT,
                    ctx.timeout,
                    "reading the open-files limit",
                )
                text = done.stdout
            source = (
                "live, /proc limits" if "Max open files" in text else f"live, {_unit(pidfile)} LimitNOFILE"
            )
            return parse_limits(text), source
        except (TargetError, OSError, ValueError) as exc:
            why = str(exc)
    planned = _planned_nofile(ctx).get(t.name)
    if planned is None:
        return None, f"unknown ({why}); no plan either"
    return planned, f"the plan's LimitNOFILE, which the role deploys; not read live: {why}"


def _limits(ctx: RunContext) -> list[ProcessLimits]:
    pools = {h.name: h.pools for h in ctx.topology.pgbouncers}
    out = []
    for t in pgb.admin_targets(ctx):
        with AdminConsole(t, ctx.timeout) as console:
            config = {k: e.value for k, e in console.config().items()}
        fd_limit, source = _fd_limit(ctx, t, config.get("pidfile", ""))
        out.append(
            ProcessLimits(
                t.label,
                t.name,
                as_int(config.get("max_client_conn")),
                pools.get(t.name, 1),
                as_int(config.get("default_pool_size")),
                as_int(config.get("reserve_pool_size")),
                fd_limit,
                source,
            )
        )
    return out


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Read each process's limits and plan the SETs; a value beyond a limit is refused (exit 2)."""
    try:
        planned = {p.host: p.value("max_client_conn") for p in size_plan(ctx.topology).pgbouncer}
    except SizingError:
        planned = {}
    return plan_raise(_limits(ctx), opts.max_client_conn, planned)


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """SET max_client_conn on one process."""
    value = int(action.args["max_client_conn"])
    with AdminConsole(pgb.by_label(ctx, action.target), ctx.timeout) as console:
        console.command(set_command("max_client_conn", value))
    return f"max_client_conn {action.args.get('was')} -> {value}"


def _live(ctx: RunContext, label: str) -> str:
    with AdminConsole(pgb.by_label(ctx, label), ctx.timeout) as console:
        entry = console.config().get("max_client_conn")
    return entry.value if entry else "?"


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """SHOW CONFIG reports the new max_client_conn on every process acted on."""
    wanted = {a.target: str(a.args["max_client_conn"]) for a in plan.actions}
    now = {label: _live(ctx, label) for label in wanted}
    wrong = [f"{label} has {now[label]}, not {v}" for label, v in wanted.items() if now[label] != v]
    if wrong:
        return False, f"max_client_conn not as set: {'; '.join(wrong)}"
    shown = ", ".join(f"{label} = {v}" for label, v in sorted(now.items()))
    return True, f"max_client_conn {shown} (SHOW CONFIG); RELOAD reverts it until the inventory says so"

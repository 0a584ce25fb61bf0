"""Runbook pgbouncer-reload: RELOAD through the admin console, with SHOW CONFIG before and after as a diff.

A RELOAD re-reads the file and reverts any live SET. It is sent through the admin console, so it
works from the controller on any host, and on each process of a host that runs several (each has its
own config). Restart-only settings (SHOW CONFIG's ``changeable`` is ``no``) keep their old value: where
PgBouncer runs on this machine and its file sets them differently, the runbook reports that a restart
is needed (it never restarts). On another host the file is not read, and the notes say so.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget, ConfigEntry
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan
from toolkit.domain.runbooks.pgbouncer import config_diff, parse_ini, plan_reload, restart_needed
from toolkit.runbooks import pgb
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "pgbouncer-reload",
    "RELOAD PgBouncer's config; show the SHOW CONFIG diff and what needs a restart",
    fixes=("pgbouncer.config_drift",),
    params=("--target", "--process", "--timeout"),
)
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _config(target: AdminTarget, timeout: float) -> dict[str, ConfigEntry]:
    with AdminConsole(target, timeout) as console:
        return dict(console.config())


def _file_values(target: AdminTarget, config: dict[str, ConfigEntry]) -> dict[str, str] | None:
    """The [pgbouncer] section of the config file, when PgBouncer runs on this machine and it is readable.

    A PgBouncer on another host (the fleet) is reloaded over the network through its admin console; its
    file is not read (None): the toolkit never reaches into a host other than through its services.
    """
    conffile = config.get("conffile")
    if target.host not in _LOOPBACK or conffile is None or not conffile.value:
        return None
    try:
        return parse_ini(_expanded(Path(conffile.value)))
    except (OSError, ValueError):
        return None


def _expanded(path: Path, depth: int = 0) -> str:
    """The file's text with each ``%include FILE`` line replaced by that file's text (as PgBouncer does)."""
    if depth > 10:
        raise ValueError(f"{path}: %include nested too deep")
    out = []
    for line in path.read_text().splitlines():
        if line.lstrip().lower().startswith("%include"):
            included = Path(line.split(None, 1)[1].strip())
            out.append(_expanded(included if included.is_absolute() else path.parent / included, depth + 1))
        else:
            out.append(line)
    return "\n".join(out)


def _pending(target: AdminTarget, config: dict[str, ConfigEntry]) -> list[str]:
    file_values = _file_values(target, config)
    if file_values is None:
        return [
            f"{target.label}: the config file is on {target.name or target.host}, not on this machine; "
            "RELOAD goes through the admin console, restart-only settings are not compared (the "
            "playbook's --check --diff shows a file that differs)"
        ]
    live = {k: (e.value, e.changeable) for k, e in config.items()}
    lines = [
        f"{target.label}: {k} live {v!r}, file {f!r}: "
        + ("needs a restart" if not live[k][1] else "RELOAD applies it")
        for k, v, f in _differences(live, file_values)
    ]
    return lines or [f"{target.label}: the live settings match the file"]


def _differences(
    live: dict[str, tuple[str, bool]], file_values: dict[str, str]
) -> list[tuple[str, str, str]]:
    return [(k, live[k][0], v) for k, v in sorted(file_values.items()) if k in live and live[k][0] != v]


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Plan RELOAD on each target; the notes say what the file would change."""
    targets = pgb.admin_targets(ctx)
    base = plan_reload([t.label for t in targets])
    notes: list[str] = []
    for t in targets:
        notes += _pending(t, _config(t, ctx.timeout))
    return RunbookPlan(base.runbook, base.actions, base.notes + tuple(notes))


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """SHOW CONFIG, RELOAD, SHOW CONFIG: the result is the diff (key: before -> after)."""
    target = pgb.by_label(ctx, action.target)
    with AdminConsole(target, ctx.timeout) as console:
        before = {k: e.value for k, e in console.config().items()}
        console.command("RELOAD")
        after = {k: e.value for k, e in console.config().items()}
    diff = config_diff(before, after)
    if not diff:
        return "reloaded; no setting changed"
    return "reloaded; changed: " + ", ".join(f"{k}: {b} -> {a}" for k, b, a in diff)


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """The live settings now match the file, except restart-only ones, which are reported."""
    problems: list[str] = []
    remote: list[str] = []
    for t in pgb.admin_targets(ctx):
        config = _config(t, ctx.timeout)
        file_values = _file_values(t, config)
        if file_values is None:
            remote.append(t.label)
            continue
        live = {k: (e.value, e.changeable) for k, e in config.items()}
        for k, v, f in restart_needed(live, file_values):
            problems.append(f"{t.label}: {k} is {v!r} live but {f!r} in the file: needs a restart")
        for k, v, f in _differences(live, file_values):
            if live[k][1]:
                problems.append(f"{t.label}: {k} is {v!r} live but {f!r} in the file after RELOAD")
    if problems:
        return False, "; ".join(problems)
    if remote:
        return True, f"RELOAD accepted by {', '.join(remote)} (its config file is on its host, not compared)"
    return True, "the live settings match the config file (SHOW CONFIG)"

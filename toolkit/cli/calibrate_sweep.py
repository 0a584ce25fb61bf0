"""``toolkit calibrate --sweep``: SET pool sizes live on a staging PgBouncer, pgbench each, advise the knee.

The advice is one inventory line for the swept host, ``pgbouncer_default_pool_size: N``; ``--write FILE``
puts it into a host_vars/group_vars file (:mod:`toolkit.adapters.vars_file`).
"""

from __future__ import annotations

import datetime
import enum
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from toolkit.adapters.inventory import Vault
from toolkit.cli.context import load_context
from toolkit.cli.numbers import count
from toolkit.cli.status import ExitStatus
from toolkit.domain.calibrate import (
    KNEE_P99_FACTOR,
    KNEE_TOLERANCE,
    POOL_VARIABLE,
    KneeResult,
    knee,
    pin_pool,
    pool_line,
    summarize,
)
from toolkit.domain.errors import InputDataError, UnreachableError, UsageError

if TYPE_CHECKING:
    from toolkit.adapters.pgbench import SweepPoint
    from toolkit.adapters.secrets import Secrets
    from toolkit.domain.plan import PgBouncerPlan

SCHEMA = {"name": "toolkit.calibrate", "version": 1}
SWEEP_SIZES = "2,4,8,16,32,64"
MAX_POOL = 10_000  # a pool size beyond any real one
# What the advised line changes on the host, shown before -> after.
SHOWN = ("default_pool_size", "reserve_pool_size", "min_pool_size", "max_db_connections")


class SweepWorkload(enum.StrEnum):
    """pgbench scripts of ``--sweep``."""

    django = "django"
    tpcb = "tpcb"


@dataclass(frozen=True)
class SweepRequest:
    """The command line of ``calibrate --sweep``."""

    inventory: str | None
    secrets: str | None
    vault: Vault
    yes: bool
    sizes: str
    duration: float
    clients: int | None
    workload: SweepWorkload
    database: str | None
    user: str | None
    target: str | None
    timeout: float
    write: Path | None = None
    rounds: int = 1


def run(req: SweepRequest, sweep: bool, json_output: bool) -> None:
    """Plan the sweep (refusing bad input), show it, and run it only with --yes."""
    if not sweep:
        raise UsageError("--yes and --write act only with --sweep (calibrate alone changes nothing)")
    try:
        sizes = sorted({count("--sizes", 1, MAX_POOL)(x.strip()) for x in req.sizes.split(",") if x.strip()})
    except UsageError as exc:
        raise UsageError(f"--sizes: each pool size {exc.message}; such as 4,8,16,32") from None
    if not sizes or sizes[0] < 1 or req.duration <= 0 or (req.clients is not None and req.clients < 1):
        raise UsageError("--sizes must be at least 1, --duration above 0 and --clients at least 1")
    ctx = load_context(req.inventory, req.secrets, req.vault, announce=True)
    topology = ctx.topology
    hosts = {h.name: h for h in topology.pgbouncers}
    name = req.target or next(iter(hosts))
    if name not in hosts or (req.target is None and len(hosts) > 1):
        raise UsageError(f"pick the PgBouncer host to sweep with --target (one of: {', '.join(hosts)})")
    if hosts[name].processes > 1:
        raise UsageError(
            f"PgBouncer host {name} runs {hosts[name].processes} processes on one port: a SET reaches only "
            "the process the admin session lands on; sweep a single-process staging PgBouncer"
        )
    _check_write_target(req.write, name)
    ep = next(e for e in ctx.of_kind("pgbouncer") if e.name == name)
    now = next(p for p in ctx.require_plan().pgbouncer if p.host == name)
    what: dict[str, Any] = {
        "pgbouncer": name,
        "address": f"{ep.address}:{ep.port}",
        "database": req.database or hosts[name].databases[0],
        "user": req.user or hosts[name].users[0],
        "sizes": sizes,
        "clients": req.clients or max(1, now.client_demand),
        "duration_s": req.duration,
        "rounds": req.rounds,
        "load_s": len(sizes) * req.rounds * req.duration,
        "workload": req.workload.value,
        "plan_default_pool_size": now.value("default_pool_size"),
        "write": None if req.write is None else str(req.write),
    }
    if not req.yes:
        _show_dry_run(what, json_output)
        typer.echo("dry run: nothing changed (add --yes to act, on a staging database only)", err=True)
        raise typer.Exit(ExitStatus.OK)
    doc, points = _run_sweep(req, what, ep.address, ep.port, ep.admin_user, ctx.secrets)
    try:
        best = knee(points)
    except ValueError as exc:
        raise UnreachableError(f"sweep of {name}: {exc}; read pgbench's errors above, sweep again") from None
    new = next(h for h in pin_pool(topology, name, best.pool_size).pgbouncer if h.host == name)
    line = pool_line(best.pool_size)
    doc |= {
        "per_size": [asdict(s) for s in summarize(points)],
        "knee": best.pool_size,
        "advice": {**asdict(best), "tolerance": KNEE_TOLERANCE, "p99_factor": KNEE_P99_FACTOR, "line": line},
        "inventory_values": {POOL_VARIABLE: best.pool_size},
        "pgbouncer": {s: new.value(s) for s in SHOWN},
    }
    written, refusal = _write(req.write, best, what)
    doc["write"] = written
    if json_output:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _table(doc, best, now, new, line, written)
    if refusal is not None:
        raise refusal


def _check_write_target(path: Path | None, host: str) -> None:
    """Refuse a host_vars file of another host before anything runs (64)."""
    if path is None:
        return
    owner = path.stem if path.parent.name == "host_vars" else None
    if path.parent.parent.name == "host_vars":  # host_vars/HOST/any.yml
        owner = path.parent.name
    if owner is not None and owner != host:
        raise UsageError(f"{path} holds the variables of host {owner}, the sweep measures {host}", "--write")
    if path.suffix not in (".yml", ".yaml", ""):
        raise UsageError(f"{path} is not a YAML vars file (.yml or .yaml)", "--write")
    if not path.parent.is_dir():
        raise UsageError(f"no directory {path.parent}: create it, or give an existing vars file", "--write")


def _write(
    path: Path | None, best: KneeResult, what: dict[str, Any]
) -> tuple[dict[str, Any] | None, InputDataError | None]:
    """Write the line into ``path``; return what happened and the refusal to raise after the output."""
    if path is None:
        return None, None
    from toolkit.adapters import vars_file  # noqa: PLC0415 - PyYAML only when a file is written

    today = datetime.datetime.now(datetime.UTC).date().isoformat()
    sizes = ",".join(map(str, what["sizes"]))
    comment = (
        f"toolkit calibrate --sweep {today}: knee of {sizes} over {_rounds(what['rounds'])} "
        f"({what['workload']}, {what['clients']} clients, {what['duration_s']:g} s each)"
    )
    try:
        done = vars_file.set_variable(path, POOL_VARIABLE, best.pool_size, comment)
    except InputDataError as exc:
        return {"path": str(path), "status": "refused", "error": str(exc)}, exc
    status = "created" if done.created else "written"
    return {"path": str(path), "status": status, "previous": done.previous}, None


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _rounds(n: int) -> str:
    return f"{n} round" if n == 1 else f"{n} rounds"


def _table(
    doc: dict[str, Any],
    best: KneeResult,
    now: PgBouncerPlan,
    new: PgBouncerPlan,
    line: str,
    written: dict[str, Any] | None,
) -> None:
    rounds = doc["sweep"]["rounds"]
    median = "" if rounds == 1 else f"  (TPS and p99: medians of {rounds} rounds)"
    typer.echo(f"pool  TPS      p99 ms  TPS min-max  errors{median}")
    errors: dict[int, int] = {}
    for pt in doc["points"]:
        errors[pt["size"]] = errors.get(pt["size"], 0) + pt["errors"]
    for s in doc["per_size"]:
        size, spread = s["pool_size"], f"{s['tps_min']:.0f}-{s['tps_max']:.0f}"
        typer.echo(f"{size:<5} {s['tps']:<8.0f} {_fmt(s['p99_ms']):<7} {spread:<12} {errors[size]}")
    host, restored = doc["sweep"]["pgbouncer"], doc["sweep"]["restored_default_pool_size"]
    typer.echo(f"knee: {best.reason}")
    typer.echo(f"live default_pool_size on {host} restored to {restored}")
    typer.echo(f"{host} with it: " + ", ".join(f"{s} {now.value(s)} -> {new.value(s)}" for s in SHOWN))
    typer.echo(f"inventory line for {host} (its host_vars):")
    typer.echo(line)
    if written is None:
        typer.echo("(add --write FILE to put it there; then deploy)")
    elif written["status"] != "refused":
        was = "" if written["previous"] is None else f", was {written['previous']}"
        typer.echo(f"{written['status']} {written['path']} ({line}{was}); deploy it")
    else:
        typer.echo(f"not written to {written['path']}: paste the line above by hand")


def _run_sweep(
    req: SweepRequest, what: dict[str, Any], address: str, port: int, admin_user: str, secrets: Secrets
) -> tuple[dict[str, Any], list[SweepPoint]]:
    """Check the pgbench tables, then SET, pgbench and restore through the adapters (loads psycopg)."""
    from toolkit.adapters import pgbench  # noqa: PLC0415
    from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget  # noqa: PLC0415

    password = secrets.password("pgbouncer_admin") or ""
    target = pgbench.Endpoint(address, port, what["user"], what["database"])
    env = dict(os.environ)  # pgbench finds its password as libpq does: PGPASSWORD or the password file
    scale = pgbench.dataset_scale(target, env, req.timeout)
    if scale is None:
        raise UsageError(
            f"no pgbench tables in database {target.dbname}: create them on staging first: pgbench -i -s 10 "
            f"-h {address} -p {port} -U {target.user} {target.dbname} (password: PGPASSWORD or ~/.pgpass)"
        )

    def progress(point: pgbench.SweepPoint) -> None:
        where = "" if req.rounds == 1 else f"round {point.round}/{req.rounds}, "
        typer.echo(
            f"{where}pool {point.size}: {point.result.tps:.0f} TPS, p99 {_fmt(point.result.p99_ms)} ms",
            err=True,
        )

    with AdminConsole(
        AdminTarget(address, port, admin_user, password, what["pgbouncer"]), req.timeout
    ) as console:
        original, points = pgbench.sweep(
            console,
            target,
            what["sizes"],
            clients=what["clients"],
            duration=req.duration,
            env=env,
            script=pgbench.DJANGO_LIKE if req.workload is SweepWorkload.django else None,
            scale=scale,
            progress=progress,
            rounds=req.rounds,
        )
    done = {**what, "restored_default_pool_size": original}
    doc = {"schema": SCHEMA, "dry_run": False, "sweep": done, "points": [p.to_dict() for p in points]}
    return doc, points


def _show_dry_run(what: dict[str, Any], json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps({"schema": SCHEMA, "dry_run": True, "sweep": what}, indent=2))
        return
    sizes, load, rounds = ", ".join(map(str, what["sizes"])), what["load_s"], what["rounds"]
    order = (
        ""
        if rounds == 1
        else "; once per round, odd rounds in this order, even rounds in reverse; the knee reads each "
        "size's median TPS and p99"
    )
    host = what["pgbouncer"]
    write = (
        f"\n  5. write that line into {what['write']} (other keys and comments kept; a vault-encrypted "
        "file or one that is not a YAML mapping is refused, exit 65)"
        if what["write"]
        else ""
    )
    typer.echo(
        f"calibrate --sweep would, on PgBouncer {host} ({what['address']}), database "
        f"{what['database']}, user {what['user']}:\n  1. SET default_pool_size to {sizes} in turn "
        f"(checked in SHOW DATABASES), {_rounds(rounds)}{order}\n  2. at each size run pgbench "
        f"({what['workload']}, {what['clients']} clients, {what['duration_s']:g} s) through PgBouncer: "
        f"{load:g} s of load ({len(what['sizes'])} sizes x {_rounds(rounds)} x {what['duration_s']:g} s)"
        "\n  3. restore "
        "default_pool_size to its current value at the end, even on error\n  4. print the knee (the smallest "
        f"size within {KNEE_TOLERANCE:.0%} of the best TPS with a p99 at most {KNEE_P99_FACTOR:g} x the "
        f"best's) as the inventory line {POOL_VARIABLE}: N for {host} (the plan gives "
        f"{what['plan_default_pool_size']} now){write}\nFor a STAGING database only: every client of this "
        "PgBouncer gets the swept pool sizes."
    )

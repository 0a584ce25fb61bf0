"""Helpers for the runbook integration tests (a helper module, not a test file).

`run()` calls the real `toolkit runbook run` against the lab with JSON output and an audit log in the
test's tmp_path, and times it (set TOOLKIT_RUNBOOK_TIMES=FILE to collect the wall times as JSON lines).
Everything else reaches the lab's hosts over the network from this machine: each PgBouncer process's
admin console (a host with several processes on one port is reached process by process), the app role
through a PgBouncer host (PostgreSQL admits it only from there), and the monitoring role straight to db1.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import yaml

from tests.cli.streams import without_inventory_line
from tests.integration.conftest import (
    BIN,
    DB_HOST,
    LAB_INVENTORY,
    PGBOUNCER_HOSTS,
    ROOT,
    address,
    lab_secret,
)
from toolkit.adapters import inventory
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget, admin_command
from toolkit.adapters.secrets import Secrets
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.runbooks.processes import selected_processes
from toolkit.domain.targets import endpoints
from toolkit.runbooks.base import RunContext

PGB_PORT = 6432
CONTROLLER = "198.18.0.1"  # this machine on the lab bridge (docs/lab.md)
PG_PORT = 5432


@dataclass
class Result:
    """One run of the CLI."""

    code: int
    doc: dict[str, Any] | None
    stdout: str
    stderr: str
    elapsed: float

    def results(self) -> list[dict[str, Any]]:
        return list((self.doc or {}).get("results", []))


def run(name: str, *args: str, audit: Path, yes: bool = False, timeout: float = 120) -> Result:
    """`toolkit runbook run NAME -i lab ... --format json`, no terminal (so no prompt)."""
    cmd = [
        str(BIN / "toolkit"),
        "runbook",
        "run",
        name,
        "-i",
        str(LAB_INVENTORY),
        "--secrets",
        str(ROOT / ".lab"),
        "--audit-log",
        str(audit),
        "--format",
        "json",
        *args,
    ]
    if yes:
        cmd.append("--yes")
    start = time.monotonic()
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
    )
    elapsed = time.monotonic() - start
    assert "Traceback" not in proc.stderr, proc.stderr
    doc = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else None
    times = os.environ.get("TOOLKIT_RUNBOOK_TIMES")
    if times:
        with open(times, "a") as out:
            line = {
                "runbook": name,
                "yes": yes,
                "args": list(args),
                "code": proc.returncode,
                "seconds": elapsed,
            }
            out.write(json.dumps(line) + "\n")
    return Result(proc.returncode, doc, proc.stdout, proc.stderr, elapsed)


def audit_records(path: Path) -> list[dict[str, Any]]:
    """Every record of the audit log (none if it was never written)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def outcomes(path: Path) -> list[dict[str, Any]]:
    """The outcome records of the audit log, each checked to follow its intent record (same id)."""
    records = audit_records(path)
    out = []
    for i, record in enumerate(records):
        if record["phase"] != "outcome":
            continue
        intents = [r for r in records[:i] if r["phase"] == "intent" and r["id"] == record["id"]]
        assert len(intents) == 1, record
        assert {k: v for k, v in intents[0].items() if k not in ("time", "phase")} == {
            k: v for k, v in record.items() if k not in ("time", "phase", "result")
        }
        out.append(record)
    assert len(out) == sum(r["phase"] == "intent" for r in records), "an intent without its outcome"
    return out


def assert_one_line_error(result: Result, code: int, fragment: str) -> None:
    """A refused run: one line on stderr (after the line naming the inventory), the exit code, the message."""
    assert result.code == code, (result.code, result.stderr)
    lines = without_inventory_line(result.stderr).strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("toolkit: "), lines[0]
    assert fragment in lines[0], lines[0]


def no_secret(*texts: str) -> None:
    """No lab password appears in any of ``texts``."""
    for name in sorted(p.name for p in (ROOT / ".lab").iterdir() if p.name.endswith("password")):
        secret = lab_secret(name)
        assert all(secret not in t for t in texts), name


def context(audit: Path) -> RunContext:
    """The context `toolkit runbook run` builds for the lab, to plan and act in two steps in one test."""
    data = inventory.load(str(LAB_INVENTORY))
    topology = topology_from_inventory(data.groups, data.hostvars)
    eps = endpoints(topology, data.groups, data.hostvars)
    return RunContext(
        data, topology, eps, Secrets.locate(str(LAB_INVENTORY), str(ROOT / ".lab")), 5.0, None, audit
    )


# --- connections --------------------------------------------------------------------------------


def processes(host: str) -> list[int]:
    """The processes of a PgBouncer host as the runbooks name them: [0] for one process, else 1..N."""
    hostvars = _hostvars(host)
    return selected_processes(host, int(hostvars.get("pgbouncer_processes", 1)), None)


def _hostvars(host: str) -> dict[str, Any]:
    doc = yaml.safe_load((LAB_INVENTORY / "hosts.yml").read_text())
    return dict(doc["all"]["children"]["pgbouncer"]["hosts"].get(host) or {})


PROCESSES = [(host, number) for host in PGBOUNCER_HOSTS for number in processes(host)]


def admin(host: str = "pgb1", process: int = 0) -> AdminConsole:
    """The admin console of one PgBouncer process of the lab (``process`` 0: whichever answers)."""
    target = AdminTarget(
        address(host), PGB_PORT, "pgbouncer_admin", lab_secret("pgbouncer_admin_password"), host, process
    )
    return AdminConsole(target, 5.0)


def show(command: str, host: str = "pgb1", process: int = 0) -> list[dict[str, Any]]:
    """Rows of one admin-console command on one process."""
    with admin(host, process) as console:
        return console.rows(command)


def show_host(command: str, host: str) -> list[dict[str, Any]]:
    """Rows of one admin-console command from every process of a host."""
    return [row for number in processes(host) for row in show(command, host, number)]


def db_flags(database: str = "app", host: str = "pgb1", process: int = 0) -> tuple[int, int]:
    """(paused, disabled) from SHOW DATABASES of one process."""
    row = next(r for r in show("SHOW DATABASES", host, process) if r["name"] == database)
    return int(row["paused"]), int(row["disabled"])


def host_flags(host: str, database: str = "app") -> set[tuple[int, int]]:
    """(paused, disabled) of every process of a host: one element when they agree."""
    return {db_flags(database, host, number) for number in processes(host)}


def config(host: str = "pgb1", process: int = 0) -> dict[str, str]:
    """SHOW CONFIG of one process as key -> value."""
    return {str(r["key"]): str(r["value"]) for r in show("SHOW CONFIG", host, process)}


def tier() -> dict[tuple[str, int], tuple[tuple[int, int], str]]:
    """Every PgBouncer process's (paused, disabled) and default_pool_size: what a run must leave alone."""
    return {(h, n): (db_flags("app", h, n), config(h, n)["default_pool_size"]) for h, n in PROCESSES}


def app(
    *, autocommit: bool = False, pgbouncer: str = "pgb1", application_name: str = "runbook-test"
) -> psycopg.Connection[Any]:
    """The app's connection through one PgBouncer host (PostgreSQL admits the app role only from there)."""
    return psycopg.connect(
        host=address(pgbouncer),
        port=PGB_PORT,
        user="app",
        password=lab_secret("app_password"),
        dbname="app",
        autocommit=autocommit,
        connect_timeout=5,
        prepare_threshold=None,
        application_name=application_name,
    )


def direct(
    *, autocommit: bool = False, dbname: str = "app", application_name: str = "runbook-test"
) -> psycopg.Connection[Any]:
    """A session straight to PostgreSQL on db1 as the monitoring role (admitted from this machine): one
    backend for its whole life, which a session through PgBouncer in transaction mode is not."""
    return psycopg.connect(
        host=address(DB_HOST),
        port=PG_PORT,
        user="toolkit_monitor",
        password=lab_secret("monitor_password"),
        dbname=dbname,
        autocommit=autocommit,
        connect_timeout=5,
        application_name=application_name,
    )


def backend_pids() -> set[int]:
    """Every backend pid PostgreSQL has now."""
    with direct(autocommit=True, dbname="postgres") as conn:
        return {int(r[0]) for r in conn.execute("SELECT pid FROM pg_stat_activity")}


def state_of(pid: int) -> str | None:
    """pg_stat_activity.state of one backend, or None when it is gone."""
    with direct(autocommit=True, dbname="postgres") as conn:
        row = conn.execute("SELECT state FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
        return None if row is None else str(row[0])


def cancel(pid: int) -> None:
    """pg_cancel_backend as the monitoring role (pg_signal_backend)."""
    with direct(autocommit=True, dbname="postgres") as conn:
        conn.execute("SELECT pg_cancel_backend(%s)", [pid])


@contextmanager
def lab_restored() -> Iterator[None]:
    """Whatever a test does, leave every PgBouncer process resumed, enabled and at its file's settings."""
    try:
        yield
    finally:
        for host, number in PROCESSES:
            with admin(host, number) as console:
                for row in console.databases():
                    if row.name == "pgbouncer":
                        continue
                    if row.paused:
                        with suppress(Exception):
                            console.resume(row.name)
                    if row.disabled:
                        with suppress(Exception):
                            console.enable(row.name)
                with suppress(Exception):  # a bare PAUSE does not show in SHOW DATABASES (1.18)
                    console.command(admin_command("RESUME"))
                console.command("RELOAD")

"""toolkit watch from the controller: both PgBouncer hosts, and each of pgb2's two processes (so_reuseport)
read on its own, with a client held through pgb2 counted on the process that has it, each pool beside
the plan's pool size, and PostgreSQL's slots used against usable."""

from __future__ import annotations

import os
import subprocess
from typing import Any

from tests.integration.conftest import BIN, LAB_INVENTORY, ROOT, app_connection

PGB2 = ("pgb2@198.18.0.12:6432#1", "pgb2@198.18.0.12:6432#2")


def _watch() -> str:
    proc = subprocess.run(
        [
            str(BIN / "toolkit"),
            "watch",
            "-i",
            str(LAB_INVENTORY),
            "--secrets",
            str(ROOT / ".lab"),
            "--count",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def _rows(out: str) -> list[list[str]]:
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    return [r for r in rows if r and r[0]]


def test_watch_shows_both_hosts_and_each_process_of_pgb2(lab_plan: dict[str, Any]) -> None:
    with app_connection("watch-test", pgbouncer="pgb2") as conn:
        conn.execute("SELECT 1")
        out = _watch()
    rows = _rows(out)
    # columns: pgbouncer, pool, servers, util, cl (clients), wait, from (app nodes), maxwait, state
    assert {r[0] for r in rows} == {"pgb1@198.18.0.11:6432", *PGB2, "fleet"}, rows
    assert all(r[4].isdigit() for r in rows), rows  # no process failed to answer
    # The held client: one of pgb2's processes counts it among its clients.
    assert sum(int(r[4]) for r in rows if r[0] in PGB2 and r[1] == "app/app") >= 1, rows
    # Each pool's servers beside the plan: active/default_pool_size+reserve_pool_size.
    for r in rows:
        if r[1] == "app/app":
            settings = lab_plan["pgbouncer"][r[0].split("@")[0]]["settings"]
            planned = f"/{settings['default_pool_size']}+{settings['reserve_pool_size']}"
            assert r[2].endswith(planned), (r, planned)
    usable = [line for line in out.splitlines() if line.startswith("PostgreSQL 198.18.0.10: ")]
    assert len(usable) == 1 and "usable slots in use" in usable[0], out

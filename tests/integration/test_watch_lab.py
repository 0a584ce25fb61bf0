"""toolkit watch from the controller: both PgBouncer hosts, and each of pgb2's two processes (so_reuseport)
read on its own, with a client held through pgb2 counted on the process that has it."""

from __future__ import annotations

import os
import subprocess

from tests.integration.conftest import BIN, LAB_INVENTORY, ROOT, app_connection

PGB2 = ("pgb2@198.18.0.12:6432 process 1", "pgb2@198.18.0.12:6432 process 2")


def _rows() -> list[list[str]]:
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
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in proc.stdout.splitlines()]
    return [r for r in rows if r and r[0]]


def test_watch_shows_both_hosts_and_each_process_of_pgb2() -> None:
    with app_connection("watch-test", pgbouncer="pgb2") as conn:
        conn.execute("SELECT 1")
        rows = _rows()
    assert {r[0] for r in rows} == {"pgb1@198.18.0.11:6432", *PGB2, "fleet"}, rows
    assert all(r[2].isdigit() for r in rows if r[0] != "fleet"), rows  # no process failed to answer
    # The held client: one of pgb2's processes counts it in cl_active.
    assert sum(int(r[2]) for r in rows if r[0] in PGB2 and r[1] == "app/app") >= 1, rows

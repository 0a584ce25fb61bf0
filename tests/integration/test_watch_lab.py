"""toolkit watch from the controller: both PgBouncer hosts, and each of pgb2's two processes (so_reuseport)
read on its own, with a client held through pgb2 counted on the process that has it."""

from __future__ import annotations

import os
import subprocess

from tests.integration.conftest import BIN, LAB_INVENTORY, ROOT, app_connection


def _rows() -> dict[str, list[str]]:
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
    rows: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if cells and cells[0]:
            rows.setdefault(cells[0], []).extend(cells[1:])
    return rows


def test_watch_shows_both_hosts_and_each_process_of_pgb2() -> None:
    with app_connection("watch-test", pgbouncer="pgb2") as conn:
        conn.execute("SELECT 1")
        rows = _rows()
    assert {"pgb1", "pgb2 p1", "pgb2 p2", "fleet"} <= set(rows), rows
    assert not any("timed out" in " ".join(r) or "refused" in " ".join(r) for r in rows.values()), rows
    # The held client: one of pgb2's processes counts it in cl_active (the row's second cell).
    active = [int(rows[p][1]) for p in ("pgb2 p1", "pgb2 p2") if rows[p][0] == "app/app"]
    assert sum(active) >= 1, rows

"""``toolkit calibrate --sweep --yes --write`` against the lab's single-process PgBouncer (pgb1).

The sweep SETs default_pool_size to 2, 8 and 20 on pgb1's admin console, runs the Django-like pgbench
script through it from this machine for a few seconds at each, restores the size, and writes the knee's
line into a temporary copy of the lab inventory's host_vars/pgb1.yml; ``toolkit plan`` on that copy must
then give pgb1 that pool. The sweep needs pgbench tables that the app role reaches by their bare names,
so the fixture creates them (scale 1) in the app database's public schema, owned by app, and drops them
afterwards unless they were there before. Short on purpose (about 12 s of load): it proves the path, it
does not measure the knee (bench/pool_sizing.py does).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import BIN, DB_HOST, LAB_INVENTORY, ROOT, SECRETS, address, lab_secret, ssh_ok
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget

HOST = "pgb1"  # one process: a SET reaches every client (pgb2's two processes are refused)
SIZES = (2, 8, 20)
TABLES = ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
PSQL = "sudo -n -u postgres psql -X -At -v ON_ERROR_STOP=1 -d app"
EXISTING = (
    f"{PSQL} -c \"SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename LIKE 'pgbench_%'\""
)
CREATE = f"sudo -n -u postgres /usr/lib/postgresql/*/bin/pgbench -i -q -s 1 app && {PSQL}"
HANDOVER = "".join(f"ALTER TABLE public.{t} OWNER TO app;\n" for t in TABLES)
DROP = f"{PSQL} -c 'DROP TABLE IF EXISTS {', '.join('public.' + t for t in TABLES)}'"


@pytest.fixture(scope="module")
def dataset() -> Iterator[None]:
    """pgbench tables (scale 1) in app's public schema, owned by app; dropped after unless already there."""
    before = ssh_ok(DB_HOST, EXISTING).strip()
    if before == "0":
        ssh_ok(DB_HOST, CREATE, timeout=120, stdin=HANDOVER)
    try:
        yield
    finally:
        if before == "0":
            ssh_ok(DB_HOST, DROP)


def _live_pool_size() -> str:
    target = AdminTarget(address(HOST), 6432, "pgbouncer_admin", lab_secret("pgbouncer_admin_password"), HOST)
    with AdminConsole(target, 5.0) as console:
        return str(console.config()["default_pool_size"].value)


def _sweep(sizes: tuple[int, ...], duration: str, *extra: str) -> subprocess.CompletedProcess[str]:
    """``calibrate --sweep --yes`` on pgb1 with 8 clients, JSON out, and ``extra`` options."""
    sweep = ("calibrate", "-i", str(LAB_INVENTORY), "--secrets", str(SECRETS), "--sweep", "--yes")
    load = ("--target", HOST, "--sizes", ",".join(map(str, sizes)), "--duration", duration, "--clients", "8")
    return _toolkit(*sweep, *load, *extra, "--format", "json")


def _toolkit(*args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "toolkit"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PGPASSWORD": lab_secret("app_password")},
        check=False,
    )


def test_the_sweep_advises_a_swept_size_restores_the_pool_and_the_plan_follows_the_line(
    dataset: None, tmp_path: Path
) -> None:
    copy = tmp_path / "lab"
    shutil.copytree(LAB_INVENTORY, copy)
    (copy / "host_vars").mkdir(exist_ok=True)
    target = copy / "host_vars" / f"{HOST}.yml"
    assert not target.exists()  # the lab has no host_vars for pgb1: the line makes the file
    live_before = _live_pool_size()
    started = time.monotonic()
    run = _sweep(SIZES, "4", "--write", str(target))
    took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    assert [p["size"] for p in doc["points"]] == list(SIZES)
    assert all(p["tps"] > 0 and p["errors"] == 0 for p in doc["points"]), doc["points"]
    knee = doc["knee"]
    assert knee in SIZES
    assert doc["advice"]["line"] == f"pgbouncer_default_pool_size: {knee}"
    assert doc["sweep"]["restored_default_pool_size"] == int(live_before)
    assert _live_pool_size() == live_before  # SHOW CONFIG: the live pool is back
    assert doc["write"]["status"] == "created"
    assert target.read_text().startswith(f"---\npgbouncer_default_pool_size: {knee}  # toolkit calibrate")

    plan = _toolkit("plan", "-i", str(copy), "--format", "json")
    assert plan.returncode in (0, 1), plan.stderr  # 1: a warning, e.g. a pool past its share of the target
    pools = {h: p["settings"]["default_pool_size"] for h, p in json.loads(plan.stdout)["pgbouncer"].items()}
    assert pools[HOST] == knee
    print(
        f"calibrate --sweep on {HOST} in {took:.1f} s: "
        + ", ".join(f"pool {p['size']} {p['tps']:.0f} TPS p99 {p['p99_ms']} ms" for p in doc["points"])
        + f"; knee {knee} ({doc['advice']['reason']})"
    )


def test_two_rounds_run_each_size_twice_interleaved_and_restore_the_pool_once(dataset: None) -> None:
    sizes = (2, 8)
    live_before = _live_pool_size()
    started = time.monotonic()
    run = _sweep(sizes, "3", "--rounds", "2")
    took = time.monotonic() - started
    assert run.returncode == 0, run.stderr
    doc: dict[str, Any] = json.loads(run.stdout)
    # Round 1 in the given order, round 2 reversed; every run measured transactions without errors.
    assert [(p["round"], p["size"]) for p in doc["points"]] == [(1, 2), (1, 8), (2, 8), (2, 2)]
    assert all(p["tps"] > 0 and p["errors"] == 0 for p in doc["points"]), doc["points"]
    assert [f"round {r}/2, pool {s}:" in run.stderr for r, s in ((1, 2), (1, 8), (2, 8), (2, 2))] == [
        True
    ] * 4
    per_size = {s["pool_size"]: s for s in doc["per_size"]}
    assert sorted(per_size) == list(sizes)
    for size, summary in per_size.items():
        tps = sorted(p["tps"] for p in doc["points"] if p["size"] == size)
        assert summary["rounds"] == 2
        assert (summary["tps_min"], summary["tps_max"]) == (tps[0], tps[1])
    assert doc["knee"] in sizes
    assert doc["sweep"]["restored_default_pool_size"] == int(live_before)
    assert _live_pool_size() == live_before  # SHOW CONFIG: the live pool is back
    print(
        f"calibrate --sweep --rounds 2 on {HOST} in {took:.1f} s: "
        + ", ".join(f"round {p['round']} pool {p['size']} {p['tps']:.0f} TPS" for p in doc["points"])
        + f"; knee {doc['knee']}"
    )

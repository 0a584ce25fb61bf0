"""``toolkit calibrate`` from this machine on the lab under a short, bounded pgbench load through PgBouncer.

The load is a Django-like transaction (BEGIN; 4 SELECT by primary key; 1 UPDATE; COMMIT) from 8
clients for 7 s, on a scale-1 pgbench dataset in its own schema (``calib``) of the app database, so the
app's own tables are untouched. The dataset is created on the database host as postgres over SSH
(pg_hba admits the app role only from the PgBouncer hosts, and PgBouncer does not pass the
``options`` startup parameter that sets the search_path) and handed to the app role; pgbench runs
here, on the controller, against the first PgBouncer host's address, with schema-qualified names (a SET
in transaction mode would leak to other clients). The load comes from the controller as an app's
would from its node: over the lab's network, through the tier.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.conftest import (
    BIN,
    DB_HOST,
    LAB_INVENTORY,
    PGBOUNCER_HOSTS,
    ROOT,
    address,
    lab_secret,
    ssh_ok,
)
from toolkit.adapters.pgbench import find

PGBOUNCER = PGBOUNCER_HOSTS[0]
SCRIPT = """\
\\set aid random(1, 99990)
BEGIN;
SELECT abalance FROM calib.pgbench_accounts WHERE aid = :aid;
SELECT abalance FROM calib.pgbench_accounts WHERE aid = :aid + 1;
SELECT bbalance FROM calib.pgbench_branches WHERE bid = 1;
SELECT abalance FROM calib.pgbench_accounts WHERE aid = :aid + 2;
UPDATE calib.pgbench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
COMMIT;
"""


LOAD_TARGET = ("-h", address(PGBOUNCER), "-p", "6432", "-U", "app", "app")
# On the database host, as postgres: the dataset, then the app role owns it (SQL on stdin).
DATASET = (
    "sudo -n -u postgres psql -X -q -v ON_ERROR_STOP=1 -d app -c 'DROP SCHEMA IF EXISTS calib CASCADE' "
    "-c 'CREATE SCHEMA calib AUTHORIZATION app' && "
    "sudo -n -u postgres env PGOPTIONS='-c search_path=calib' "
    "/usr/lib/postgresql/*/bin/pgbench -i -s 1 -q app && "
    "sudo -n -u postgres psql -X -q -v ON_ERROR_STOP=1 -d app"
)
HANDOVER = """\
DO $$DECLARE t text; BEGIN
  FOR t IN SELECT tablename FROM pg_tables WHERE schemaname = 'calib' LOOP
    EXECUTE format('ALTER TABLE calib.%I OWNER TO app', t);
  END LOOP;
END$$;
"""


def _calibrate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "toolkit"), "calibrate", "-i", str(LAB_INVENTORY), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": lab_secret("app_password"), **extra}


@pytest.fixture(scope="module")
def dataset() -> None:
    """A scale-1 pgbench dataset in schema calib of the app database, owned by app (recreated each run)."""
    ssh_ok(DB_HOST, DATASET, timeout=120, stdin=HANDOVER)


def test_calibrate_measures_the_load(dataset: None, tmp_path: Path) -> None:
    script = tmp_path / "django_like.sql"
    script.write_text(SCRIPT)
    load = subprocess.Popen(
        [find(), "-n", "-c", "8", "-T", "7", "-f", str(script), *LOAD_TARGET],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(1.5)  # let the clients connect and the pool warm up
        run = _calibrate("--window", "3", "--format", "json")
    finally:
        out, _ = load.communicate(timeout=30)
    assert load.returncode == 0, out
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    (app,) = [p for p in doc["pools"] if (p["host"], p["database"]) == (PGBOUNCER, "app")]
    assert app["status"] == "ok"
    assert app["xact_rate"] > 0
    assert app["queries_per_xact"] == pytest.approx(7.0, abs=0.1)  # BEGIN, 5 statements, COMMIT
    assert app["hold_factor"] >= 1
    assert 0 < app["connections_in_use"] <= 8  # Little's law cannot exceed the 8 clients
    assert doc["hold_factor"]["recommended"] >= 1
    assert doc["inventory_values"] == {"database_hold_factor": doc["hold_factor"]["recommended"]}
    assert doc["pgbouncer"]["calibrated"][PGBOUNCER]["default_pool_size"] >= 1
    print(f"calibrate under load: {json.dumps(app)}; {out.strip().splitlines()[-1]}")


def test_calibrate_without_traffic_says_so_and_exits_3() -> None:
    run = _calibrate("--window", "0.5")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "no transactions in the window" in run.stdout
    assert "no transactions in the window on any PgBouncer" in run.stderr

"""The pool sizing harness on a tiny sweep, and ``toolkit calibrate --sweep`` against a bench PgBouncer.

Both use PgBouncer processes of their own on the lab's first PgBouncer host (bench/pgbouncer_lab.py:
transient units ``pool-sizing-*``, ports from 7432), never the lab's 6432, and the database ``bench``
on the database host with roles of their own; pgbench and toolkit run here, on the controller, over
the lab's network. The HTTP workload is skipped, saying why, where bench/demo_http.py cannot run it
(on the fleet, for now). No timing asserts: only that the harness measures every configuration,
writes its files and stops every process it started, here and on the PgBouncer host.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from tests.cli.streams import without_inventory_line
from tests.integration.conftest import BIN, ROOT

sys.path.insert(0, str(ROOT / "bench"))
import demo_http
import fleet
from pgbouncer_lab import ADMIN, BENCH_HOST, OWNER, BenchLab

BENCH = ROOT / "bench" / "pool_sizing.py"
MARK = "pool-sizing-"  # every file of the bench (configs, logs) lives in a temp dir named so


def leftovers() -> list[str]:
    """Live processes that belong to a bench run: PgBouncer and pgbench (their files are in the bench's
    temp dir), demo instances (their environment names the bench's config dir)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            env = (proc / "environ").read_bytes().decode(errors="replace")
        except OSError:
            continue
        ours = MARK in cmd and ("pgbouncer" in cmd or "pgbench" in cmd)
        if ours or f"TOOLKIT_DEMO_ETC={tempfile.gettempdir()}/{MARK}" in env:
            found.append(f"{proc.name}: {cmd[:120]}")
    return found + remote_leftovers()


def remote_leftovers() -> list[str]:
    """The bench's units (their description is PgBouncer's command line) and directories on its host."""
    units = fleet.ssh(BENCH_HOST, f"systemctl list-units --plain --no-legend --all '{MARK}*'")
    dirs = fleet.ssh(BENCH_HOST, f"sudo -n find /run -maxdepth 1 -name '{MARK}*'")
    return [f"{BENCH_HOST.name}: {line[:160]}" for line in (units + dirs).splitlines() if line.strip()]


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("results")
    run = subprocess.run(
        [sys.executable, str(BENCH), "--quick", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    return run, out


def test_quick_run_writes_the_json_with_every_configuration(
    quick: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, out = quick
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    doc: dict[str, Any] = json.loads((out / "pool_sizing.json").read_text())
    assert doc["schema"] == {"name": "bench.pool_sizing", "version": 1}
    assert {"date", "machine", "elapsed_s", "clients", "sizes", "rounds", "postgresql"} <= set(doc["meta"])
    assert (doc["meta"]["clients"], doc["meta"]["sizes"], doc["meta"]["rounds"]) == (8, [2, 4], 1)
    # The plan for this bench: one process, one pool, 8 clients -> pool min(target 20, 8 clients) = 8.
    assert doc["plan"]["single"]["settings"]["default_pool_size"] == 8
    why_not_http = demo_http.unavailable()
    if why_not_http is None:
        assert set(doc["single"]) == {"tpcb", "django", "http"}
        assert doc["meta"]["skipped"] == {}
        # 8 clients, --quick's one gunicorn process: 8 threads, so the plan sizes for the same demand.
        assert doc["plan"]["http"]["settings"]["default_pool_size"] == 8
        assert "1 workers x 8 threads" in doc["meta"]["http"]["instance"]
    else:
        assert set(doc["single"]) == {"tpcb", "django"}
        assert doc["meta"]["skipped"] == {"http": why_not_http}
    for name, rep in doc["single"].items():
        keys = {r["key"] for r in rep["rows"]}
        assert keys == {
            "sweep-2",
            "sweep-4",
            "plan",
            "calibrated",
            "pgbouncer-default",
            "formula",
            "role-default",
            "direct-2",
            "direct-4",
        }, name
        for r in rep["rows"]:
            assert r["tps"] > 0, (name, r["key"])
            assert r["p99_ms"] > 0, (name, r["key"])
            assert r["errors"] == 0, (name, r["key"], r["runs"])
        assert rep["best"]["key"] in {"sweep-2", "sweep-4"}
        assert set(rep["goal"]) == {"plan", "calibrated"}
        cal = doc["plan"]["calibration"][name]
        assert cal["measured_hold_factor"] >= 0.9  # a transaction holds its connection at least its queries
        assert cal["settings"]["default_pool_size"] >= 1
        # Every run recorded what else held PostgreSQL connections before it started.
        run0 = next(r for r in rep["rows"] if r["key"] == "plan")["runs"][0]
        assert run0["backends_before"]["client_backends"] >= 0
    multi = doc["multiplied"]
    assert [r["key"] for r in multi["rows"]] == ["multi-fixed", "multi-plan"]
    plan_row = multi["rows"][1]
    # 2 processes x 2 databases x 2 users = 8 (process, pool) pairs share the active target 20.
    assert (plan_row["pool"], plan_row["wanted"]) == (3, 32)  # share ceil(20 / 8) = 3, reserve 1
    assert plan_row["migration_probes"] == 3
    assert multi["rows"][0]["wanted"] == 160  # 8 pools x 20, over the 97 slots
    assert all(r["tps"] > 0 for r in multi["rows"])


def test_quick_run_writes_the_chart_and_the_table(
    quick: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, out = quick
    assert (out / "pool_sizing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "pool_sizing.md").read_text()
    assert "| toolkit plan (hold factor 5, inventory/lab) | 8 |" in md
    assert "Goal (plan: TPS >= 95% of best" in md
    assert "### Multiplied topology" in md
    if demo_http.unavailable() is None:
        assert "| configuration | pool | requests/s (median) |" in md
    else:
        assert "Workload http skipped: " in md
    assert md.strip().splitlines()[-1] in run.stdout


def test_quick_run_leaves_no_process_and_no_temp_dir(
    quick: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    assert leftovers() == []
    assert not [p for p in Path(tempfile.gettempdir()).glob(MARK + "*") if p.is_dir()]


def test_sigterm_mid_run_stops_every_pgbouncer(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any("pgbouncer" in p for p in leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any("pgbouncer" in p for p in leftovers()), "the bench never started its PgBouncer"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)  # reads and closes the pipe
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, output[-2000:]
    assert leftovers() == []
    assert not (tmp_path / "pool_sizing.json").exists()


@pytest.mark.skipif(demo_http.unavailable() is not None, reason=str(demo_http.unavailable()))
def test_sigterm_while_a_demo_instance_serves_stops_it(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(BENCH),
            "--quick",
            "--workloads",
            "http",
            "--no-multiplied",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any("gunicorn" in p for p in leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any("gunicorn" in p for p in leftovers()), "the bench never started a demo instance"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, output[-2000:]
    assert leftovers() == []
    assert not [p for p in Path(tempfile.gettempdir()).glob(MARK + "*") if p.is_dir()]


# --- toolkit calibrate --sweep against one of the bench's PgBouncers (never 6432) ---------------------


def _inventory(tmp: Path, port: int, admin_password: str) -> tuple[Path, Path]:
    inv = tmp / "staging.yml"
    inv.write_text(
        f"""---
all:
  vars:
    database_max_connections: 100
    database_cores: 2
    pgbouncer_listen_addr: {BENCH_HOST.address}
    pgbouncer_listen_port: {port}
    pgbouncer_databases: [{{name: bench}}, {{name: empty}}, {{name: pinned}}]
    pgbouncer_auth_users: [{{name: {OWNER}}}]
    toolkit_pgbouncer_admin_user: {ADMIN}
  children:
    pgbouncer:
      hosts:
        staging-pgb:
          ansible_host: {BENCH_HOST.address}
    django:
      hosts:
        web1:
          django_server: wsgi_sync
          django_workers: 6
"""
    )
    secrets = tmp / "secrets"
    secrets.mkdir()
    (secrets / "pgbouncer_admin_password").write_text(admin_password)
    return inv, secrets


def _calibrate(lab: BenchLab, inv: Path, secrets: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "toolkit"), "calibrate", "-i", str(inv), "--secrets", str(secrets), "--sweep", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**lab.env, "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
        check=False,
    )


@pytest.fixture(scope="module")
def staging() -> Any:
    with BenchLab() as lab:
        lab.prepare(10)
        (bouncer,) = lab.start(
            {"default_pool_size": 7, "max_client_conn": 100},
            # "empty" has no pgbench tables; "pinned" sets its own pool_size, which a SET cannot change.
            {"bench": "bench", "empty": "postgres", "pinned": "bench pool_size=3"},
        )
        yield lab, bouncer


def _live_default(bouncer: Any) -> str:
    with bouncer.admin() as console:
        return str(console.config()["default_pool_size"].value)


def test_sweep_sets_each_size_finds_the_knee_and_restores(staging: Any, tmp_path: Path) -> None:
    lab, bouncer = staging
    inv, secrets = _inventory(tmp_path, bouncer.port, lab.passwords[ADMIN])
    args = ("--yes", "--database", "bench", "--sizes", "2,4", "--duration", "2", "--clients", "6")
    run = _calibrate(lab, inv, secrets, *args, "--format", "json")
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert [p["size"] for p in doc["points"]] == [2, 4]
    assert all(p["tps"] > 0 and p["errors"] == 0 for p in doc["points"])
    assert doc["knee"] in (2, 4)
    assert doc["pgbouncer"]["default_pool_size"] == doc["knee"]
    assert doc["sweep"]["restored_default_pool_size"] == 7
    assert _live_default(bouncer) == "7"
    assert "pool 2:" in run.stderr and "pool 4:" in run.stderr


def test_sweep_refuses_a_database_without_pgbench_tables(staging: Any, tmp_path: Path) -> None:
    lab, bouncer = staging
    inv, secrets = _inventory(tmp_path, bouncer.port, lab.passwords[ADMIN])
    run = _calibrate(lab, inv, secrets, "--yes", "--database", "empty", "--sizes", "2")
    assert run.returncode == 64
    assert without_inventory_line(run.stderr).startswith(
        "toolkit: no pgbench tables in database empty: create them on staging first"
    )
    assert _live_default(bouncer) == "7"


def test_sweep_stops_and_restores_when_the_set_does_not_apply(staging: Any, tmp_path: Path) -> None:
    lab, bouncer = staging
    inv, secrets = _inventory(tmp_path, bouncer.port, lab.passwords[ADMIN])
    run = _calibrate(lab, inv, secrets, "--yes", "--database", "pinned", "--sizes", "2,4", "--duration", "1")
    assert run.returncode == 3, run.stdout + run.stderr
    assert "did not reach database pinned (SHOW DATABASES says pool_size 3)" in run.stderr
    assert "Traceback" not in run.stderr
    assert _live_default(bouncer) == "7"

"""The pool sizing harness on a tiny sweep, and ``toolkit calibrate --sweep`` against a bench PgBouncer.

Both use PgBouncer processes of their own on the lab's first PgBouncer host (bench/pgbouncer_lab.py:
transient units ``pool-sizing-*``, ports from 7432), never the lab's 6432, and the database ``bench``
on the database host with roles of their own; pgbench, wrk and toolkit run here, on the controller, over
the lab's network. The HTTP workload's demo instance is a unit of the bench's own on the first app host
(bench/demo_http.py). The quick run pins the fleet (--pin on: the database host on CPU 0, the others on
CPU 1, lab/fleet_cpus.py) and must leave it unpinned. No timing asserts: only that the harness measures
every configuration, writes its files and stops every process it started, here and on the hosts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from lab import fleet_cpus
from tests.cli.streams import without_inventory_line
from tests.integration.conftest import BIN, ROOT

sys.path.insert(0, str(ROOT / "bench"))
import demo_http
import fleet
from pgbouncer_lab import ADMIN, BENCH_HOST, OWNER, BenchLab
from sizing_runs import interleaved

BENCH = ROOT / "bench" / "pool_sizing.py"
MARK = "pool-sizing-"  # every file of the bench (configs, logs) lives in a temp dir named so
# One size, pinned, one round of 1 s runs: every configuration of every workload, with the HTTP one.
QUICK = ("--quick", "--pin", "on", "--sizes", "4", "--cal-rounds", "2")


def leftovers() -> list[str]:
    """Live processes of a bench run here (PgBouncer and pgbench: their files are in the bench's temp
    dir; wrk), and its units and directories on the PgBouncer host and the app host."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if (MARK in cmd and ("pgbouncer" in cmd or "pgbench" in cmd)) or cmd.startswith("/usr/bin/wrk "):
            found.append(f"{proc.name}: {cmd[:120]}")
    return found + remote_leftovers(BENCH_HOST) + remote_leftovers(demo_http.app_host())


def remote_leftovers(host: fleet.Host) -> list[str]:
    """The bench's units (PgBouncer's, the demo instance's) and directories on a host."""
    units = fleet.ssh(host, f"systemctl list-units --plain --no-legend --all '{MARK}*'")
    dirs = fleet.ssh(host, f"sudo -n find /run -maxdepth 1 -name '{MARK}*'")
    return [f"{host.name}: {line[:160]}" for line in (units + dirs).splitlines() if line.strip()]


def unpinned() -> bool:
    """Every lab host back on every CPU."""
    return set(fleet_cpus.current().values()) == {"0-1"}


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    assert demo_http.unavailable() is None, f"{demo_http.unavailable()}: run make lab"
    out = tmp_path_factory.mktemp("results")
    run = subprocess.run(
        [sys.executable, str(BENCH), *QUICK, "--out", str(out)],
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
    assert doc["schema"] == {"name": "bench.pool_sizing", "version": 2}
    meta = doc["meta"]
    assert {"date", "machine", "elapsed_s", "load_before", "load_after", "postgresql"} <= set(meta)
    assert (meta["clients"], meta["sizes"], meta["rounds"], meta["modes"]) == (8, [4], 1, ["pinned"])
    assert meta["skipped"] == {}
    # While it ran, the database host had CPU 0 and every other host CPU 1.
    hosts = meta["pins"]["pinned"][0]["hosts"]
    assert hosts.pop("db1") == "0" and set(hosts.values()) == {"1"}, meta["pins"]
    # Pinned, the plan sizes for a 1-core database: 8 clients -> pool min(target 10, 8 clients) = 8.
    for w in ("tpcb", "django", "http"):
        assert doc["plan"]["pinned"][w]["database_cores"] == 1
        assert doc["plan"]["pinned"][w]["settings"]["default_pool_size"] == 8
    assert "1 workers x 8 threads" in meta["http"]["instance"]
    assert set(doc["single"]["pinned"]) == {"tpcb", "django", "http"}
    for name, rep in doc["single"]["pinned"].items():
        keys = {r["key"] for r in rep["rows"]}
        direct = set() if name == "http" else {"direct-2"}
        assert keys == {"sweep-4", "plan", "advice", "fixed-20", *direct}, name
        for r in rep["rows"]:
            assert r["tps"] > 0, (name, r["key"])
            assert r["p99_ms"] > 0, (name, r["key"])
            assert r["errors"] == 0, (name, r["key"], r["runs"])
            assert r["tps_band"]["n"] == 1 and r["tps_band"]["min"] == r["tps_band"]["max"], (name, r["key"])
        assert rep["best"]["key"] == "sweep-4"
        assert set(rep["goal"]) == {"plan", "advice"}
        assert rep["goal"]["advice"]["tps_over_plan"]["n"] == 1
        cal = doc["advice"]["pinned"][name]
        # Two calibration rounds (as calibrate --sweep --rounds 2): the size ran twice.
        assert [p["pool_size"] for p in cal["points"]] == [4, 4] and cal["pool_size"] == 4
        assert [r["round"] for r in cal["runs"]] == [1, 2]
        run0 = next(r for r in rep["rows"] if r["key"] == "plan")["runs"][0]
        assert run0["backends_before"]["client_backends"] >= 0
        # Where the CPU went (lab/fleet_usage.py): the database host and the PgBouncer host worked.
        assert run0["cpu"]["db1"]["cores"] > 0 and run0["cpu"]["pgb1"]["cores"] > 0, run0["cpu"]
        assert "controller" in run0["cpu"] and "cpu_wait" in run0["cpu"]["db1"], run0["cpu"]
    assert doc["plan"]["pinned"]["tpcb"]["database_cpu_share"] == 1.0
    assert meta["unpinned_cpu_share"] == 0.5
    multi = doc["multiplied"]
    assert [r["key"] for r in multi["rows"]] == ["multi-fixed", "multi-plan"]
    plan_row = multi["rows"][1]
    # 2 processes x 2 databases x 2 users = 8 (process, pool) pairs share the active target 10 (2 cores,
    # cpu share 0.5, hold factor 5: inventory/lab).
    assert (plan_row["pool"], plan_row["wanted"]) == (2, 24)  # share ceil(10 / 8) = 2, reserve 1
    assert plan_row["migration_probes"] == 3
    assert multi["rows"][0]["wanted"] == 160  # 8 pools x 20, over the 97 slots
    assert all(r["tps"] > 0 for r in multi["rows"])


def test_quick_run_writes_the_chart_and_the_table(
    quick: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    run, out = quick
    assert (out / "pool_sizing.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "pool_sizing.md").read_text()
    assert "| toolkit plan (hold factor 5, 1 core(s)) | 8 |" in md
    assert "| tpcb | pinned | 4 | 8 |" in md
    assert "Goal (plan: TPS >= 95% of best" in md
    assert "| configuration | pool | requests/s (median) |" in md
    assert "### Multiplied topology" in md
    assert "Calibration sweep (1 s per size, 2 round(s), knee 4; pool: TPS median (min-max) / p99): 4: " in md
    assert "Where the CPU went in the best's runs" in md
    assert re.search(r"\| tpcb \| pinned \| [^|]*db1 \d\.\d\d \(waited \d", md), md
    assert md.strip().splitlines()[-1] in run.stdout


def test_quick_run_leaves_no_process_no_temp_dir_and_the_fleet_unpinned(
    quick: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    assert leftovers() == []
    assert not [p for p in Path(tempfile.gettempdir()).glob(MARK + "*") if p.is_dir()]
    assert unpinned(), fleet_cpus.current()


def test_rounds_interleave_reversed_and_a_mode_can_have_fewer() -> None:
    seen: list[tuple[int, str]] = []
    jobs = [
        (m, f"{m}{i}", lambda rnd, m=m, i=i: seen.append((rnd, f"{m}{i}")))
        for m in ("a", "b")
        for i in (1, 2)
    ]
    interleaved(3, jobs, lambda _: None, mode_rounds={"a": 3, "b": 2})
    assert seen == [
        *[(0, "a1"), (0, "a2"), (0, "b1"), (0, "b2")],
        *[(1, "b2"), (1, "b1"), (1, "a2"), (1, "a1")],
        *[(2, "a1"), (2, "a2")],
    ]


def _sigterm_when(argv: list[str], tmp_path: Path, started: str) -> str:
    """Start the bench, SIGTERM it once ``started`` shows in leftovers(), return its output."""
    proc = subprocess.Popen(
        [sys.executable, str(BENCH), *argv, "--out", str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not any(started in p for p in leftovers()) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(started in p for p in leftovers()), f"the bench never started {started}"
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)  # reads and closes the pipe
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode != 0, output[-2000:]
    return output


def test_sigterm_mid_run_stops_every_pgbouncer_and_unpins(tmp_path: Path) -> None:
    _sigterm_when([*QUICK, "--workloads", "tpcb"], tmp_path, "pgbouncer")
    assert leftovers() == []
    assert not (tmp_path / "pool_sizing.json").exists()
    assert unpinned(), fleet_cpus.current()


def test_sigterm_while_the_demo_instance_serves_stops_it(tmp_path: Path) -> None:
    _sigterm_when(["--quick", "--workloads", "http", "--no-multiplied"], tmp_path, "-http.service")
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

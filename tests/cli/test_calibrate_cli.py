"""``toolkit calibrate`` with a fake admin console: the table, JSON, exit codes and messages.

The inventory is real (tests/fixtures/inventories/small.yml, one PgBouncer pgb1); only the admin
console is replaced, by one that returns scripted SHOW STATS rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.cli.streams import without_inventory_line
from toolkit.adapters import pgbench, pgbouncer
from toolkit.cli.app import main
from toolkit.cli.calibrate import sample
from toolkit.domain.pgbouncer_rows import StatsRow

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "tests" / "fixtures" / "inventories" / "small.yml")


def stats(xacts: int, queries: int, xact_us: int, query_us: int) -> tuple[StatsRow, ...]:
    """SHOW STATS of a PgBouncer with one pool, app, and the admin pseudo-database."""
    return (StatsRow("pgbouncer", xacts, xacts, 0, 0), StatsRow("app", xacts, queries, xact_us, query_us))


class FakeConsole:
    """Answers SHOW STATS from a script of samples; records that it was closed."""

    script: ClassVar[list[tuple[StatsRow, ...]]] = []
    closed = 0

    def __init__(self, target: pgbouncer.AdminTarget, timeout: float = 5.0) -> None:
        self.target = target
        self._samples: Iterator[tuple[StatsRow, ...]] = iter(FakeConsole.script)

    def stats(self) -> tuple[StatsRow, ...]:
        return next(self._samples)

    def close(self) -> None:
        FakeConsole.closed += 1


@pytest.fixture
def console(monkeypatch: pytest.MonkeyPatch) -> type[FakeConsole]:
    monkeypatch.setattr(pgbouncer, "AdminConsole", FakeConsole)
    FakeConsole.closed = 0
    return FakeConsole


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "-i", SMALL, "--window", "0.01", "--secrets", "/nonexistent", *args])
    out, err = capsys.readouterr()
    return int(str(exc.value.code)), out, without_inventory_line(err)


def test_table_shows_the_measured_factor_and_the_inventory_line(
    console: type[FakeConsole], capsys: pytest.CaptureFixture[str]
) -> None:
    # 300 transactions of 7 queries: 7 ms each, 2 ms of it in queries -> hold factor 3.5.
    console.script = [stats(0, 0, 0, 0), stats(300, 2100, 2_100_000, 600_000)]
    code, out, err = run(capsys)
    assert (code, err) == (0, "")
    assert "hold factor measured: 3.50" in out
    assert "database_hold_factor: 3.5" in out
    assert "pgbouncer pgb1: default_pool_size" in out
    assert console.closed == 1


def test_json_carries_the_schema_and_the_calibrated_plan(
    console: type[FakeConsole], capsys: pytest.CaptureFixture[str]
) -> None:
    console.script = [stats(0, 0, 0, 0), stats(300, 2100, 2_100_000, 600_000)]
    code, out, _ = run(capsys, "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert doc["schema"] == {"name": "toolkit.calibrate", "version": 1}
    assert [p["database"] for p in doc["pools"]] == ["app"]
    assert doc["pools"][0]["queries_per_xact"] == 7.0
    assert doc["inventory_values"] == {"database_hold_factor": 3.5}
    assert set(doc["pgbouncer"]["calibrated"]["pgb1"]) == {
        "default_pool_size",
        "reserve_pool_size",
        "min_pool_size",
    }


def test_no_traffic_says_so_and_exits_unknown(
    console: type[FakeConsole], capsys: pytest.CaptureFixture[str]
) -> None:
    console.script = [stats(7, 13, 100, 100), stats(7, 13, 100, 100)]
    code, out, err = run(capsys)
    assert code == 3
    assert "no transactions in the window" in out
    assert err == (
        "toolkit: no transactions in the window on any PgBouncer: nothing to measure; run calibrate "
        "while the application is under its usual load, or with a longer --window\n"
    )


def test_window_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "-i", SMALL, "--window", "0"])
    assert exc.value.code == 64
    assert "--window" in capsys.readouterr().err


def test_sample_uses_each_hosts_own_elapsed_time() -> None:
    console = FakeConsole(pgbouncer.AdminTarget("127.0.0.1", 6432, "stats", "pw", "pgb1"))
    console._samples = iter([stats(0, 0, 0, 0), stats(400, 400, 800_000, 800_000)])
    ticks = iter([10.0, 14.0])
    slept: list[float] = []
    (m,) = sample([console], 3.0, sleep=slept.append, clock=lambda: next(ticks))
    assert slept == [3.0]
    assert (m.host, m.window_s, m.xact_rate, m.hold_factor, m.in_use) == ("pgb1", 4.0, 100.0, 1.0, 0.2)


# --- --sweep: dry run, refusals, and the rendering of a sweep (adapters faked) -----------------------


class SweepConsole:
    """An admin console that must not be opened by a dry run or a refusal."""

    opened = 0

    def __init__(self, target: pgbouncer.AdminTarget, timeout: float = 5.0) -> None:
        SweepConsole.opened += 1
        self.target = target

    def __enter__(self) -> SweepConsole:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@pytest.fixture
def sweep_console(monkeypatch: pytest.MonkeyPatch) -> type[SweepConsole]:
    monkeypatch.setattr(pgbouncer, "AdminConsole", SweepConsole)
    SweepConsole.opened = 0
    return SweepConsole


def sweep(capsys: pytest.CaptureFixture[str], *args: str, inv: str = SMALL) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "-i", inv, "--secrets", "/nonexistent", *args])
    out, err = capsys.readouterr()
    return int(str(exc.value.code)), out, without_inventory_line(err)


def test_sweep_without_yes_is_a_dry_run_that_opens_nothing(
    sweep_console: type[SweepConsole], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = sweep(capsys, "--sweep", "--sizes", "8,4,16", "--duration", "5")
    assert code == 0
    assert sweep_console.opened == 0
    assert "on PgBouncer pgb1 (127.0.0.1:6432), database app, user app" in out
    assert "SET default_pool_size to 4, 8, 16 in turn" in out
    # small.yml: one gthread node, 4 workers x 4 threads -> the plan routes 16 clients.
    assert "pgbench (django, 16 clients, 5 s) through PgBouncer: 15 s of load" in out
    assert "STAGING" in out
    assert err == "dry run: nothing changed (add --yes to act, on a staging database only)\n"


def test_sweep_dry_run_json(sweep_console: type[SweepConsole], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sweep(capsys, "--sweep", "--format", "json", "--clients", "40", "--workload", "tpcb")
    doc = json.loads(out)
    assert code == 0
    assert doc["schema"] == {"name": "toolkit.calibrate", "version": 1}
    assert doc["dry_run"] is True
    assert doc["sweep"]["sizes"] == [2, 4, 8, 16, 32, 64]
    assert (doc["sweep"]["clients"], doc["sweep"]["workload"]) == (40, "tpcb")
    assert doc["sweep"]["plan_default_pool_size"] == 16  # min(target 20, 16 clients)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--yes"], "toolkit: --yes and --write act only with --sweep (calibrate alone changes nothing)\n"),
        (
            ["--sweep", "--sizes", "4,x"],
            "toolkit: --sizes: each pool size must be a whole number from 1 to 10000, written with ASCII "
            "digits, got 'x'; such as 4,8,16,32\n",
        ),
        (
            ["--sweep", "--sizes", "0,4"],
            "toolkit: --sizes: each pool size must be a whole number from 1 to 10000, written with ASCII "
            "digits, got '0'; such as 4,8,16,32\n",
        ),
        (
            ["--sweep", "--sizes", "4,\u0661\u0666"],
            "toolkit: --sizes: each pool size must be a whole number from 1 to 10000, written with ASCII "
            "digits, got '\u0661\u0666'; such as 4,8,16,32\n",
        ),
        (
            ["--sweep", "--target", "nope"],
            "toolkit: pick the PgBouncer host to sweep with --target (one of: pgb1)\n",
        ),
    ],
)
def test_sweep_refuses_bad_input_with_one_line_and_64(
    sweep_console: type[SweepConsole], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = sweep(capsys, *args, "--yes")
    assert (code, out, err) == (64, "", message)
    assert sweep_console.opened == 0


def test_sweep_refuses_a_multi_process_host(
    sweep_console: type[SweepConsole], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    inv = tmp_path / "multi.yml"
    inv.write_text(
        Path(SMALL)
        .read_text()
        .replace("    pgbouncer_databases:", "    pgbouncer_processes: 2\n    pgbouncer_databases:")
    )
    code, _, err = sweep(capsys, "--sweep", "--yes", inv=str(inv))
    assert code == 64
    assert "runs 2 processes on one port: a SET reaches only the process" in err
    assert sweep_console.opened == 0


def test_sweep_without_pgbench_tables_names_the_init_command(
    sweep_console: type[SweepConsole], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pgbench, "dataset_scale", lambda *a, **k: None)
    code, out, err = sweep(capsys, "--sweep", "--yes")
    assert (code, out) == (64, "")
    assert err == (
        "toolkit: no pgbench tables in database app: create them on staging first: pgbench -i -s 10 "
        "-h 127.0.0.1 -p 6432 -U app app (password: PGPASSWORD or ~/.pgpass)\n"
    )
    assert sweep_console.opened == 0


def _point(size: int, tps: float, p99: float) -> pgbench.SweepPoint:
    return pgbench.SweepPoint(size, pgbench.Result(tps, int(tps * 10), 0, 0, p99 / 2, p99, 0))


@pytest.fixture
def swept(sweep_console: type[SweepConsole], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def fake_sweep(console: Any, endpoint: pgbench.Endpoint, sizes: list[int], **kw: Any) -> Any:
        seen.update(endpoint=endpoint, sizes=sizes, **kw)
        points = [_point(2, 1400, 300), _point(4, 2000, 200), _point(8, 2300, 150), _point(16, 2390, 140)]
        for p in points:
            kw["progress"](p)
        return 20, points

    monkeypatch.setattr(pgbench, "dataset_scale", lambda *a, **k: 10)
    monkeypatch.setattr(pgbench, "sweep", fake_sweep)
    return seen


def test_sweep_prints_the_knee_and_the_inventory_values(
    swept: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(
            ["calibrate", "-i", SMALL, "--secrets", "/nonexistent", "--sweep", "--yes", "--sizes", "2,4,8,16"]
        )
    out, err = capsys.readouterr()
    assert exc.value.code == 0
    assert swept["endpoint"] == pgbench.Endpoint("127.0.0.1", 6432, "app", "app")
    assert (swept["sizes"], swept["clients"], swept["scale"]) == ([2, 4, 8, 16], 16, 10)
    assert swept["script"] == pgbench.DJANGO_LIKE
    assert "pool 8: 2300 TPS, p99 150.0 ms" in err
    # 8 is the smallest within 5% of 2390 (2300 = 0.96) with p99 150 <= 1.2 x 140.
    assert out.splitlines()[5:] == [
        "knee: pool 8: 2300 TPS, 0.96 of the best (pool 16, 2390 TPS), p99 150.0 ms (best 140.0 ms); "
        "within 5% of the best TPS, p99 <= 1.2 x the best's; smaller: 2 (0.59 of the best TPS), "
        "4 (0.84 of the best TPS)",
        "live default_pool_size on pgb1 restored to 20",
        "pgb1 with it: default_pool_size 16 -> 8, reserve_pool_size 4 -> 2, min_pool_size 4 -> 2, "
        "max_db_connections 20 -> 10",
        "inventory line for pgb1 (its host_vars):",
        "pgbouncer_default_pool_size: 8",
        "(add --write FILE to put it there; then deploy)",
    ]


def test_sweep_json(swept: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sweep(capsys, "--sweep", "--yes", "--format", "json")
    doc = json.loads(out)
    assert code == 0
    assert doc["dry_run"] is False
    assert doc["knee"] == 8
    assert doc["advice"]["line"] == "pgbouncer_default_pool_size: 8"
    advice = doc["advice"]
    assert (advice["pool_size"], advice["throughput"], advice["p99_ms"]) == (8, 2300, 150)
    assert (doc["advice"]["best_pool_size"], doc["advice"]["tolerance"], doc["advice"]["p99_factor"]) == (
        16,
        0.05,
        1.2,
    )
    assert doc["advice"]["reason"].startswith("pool 8: 2300 TPS, 0.96 of the best")
    assert doc["inventory_values"] == {"pgbouncer_default_pool_size": 8}
    assert doc["pgbouncer"]["default_pool_size"] == 8
    assert doc["pgbouncer"]["max_db_connections"] == 10
    assert doc["write"] is None
    assert doc["sweep"]["restored_default_pool_size"] == 20
    assert [p["size"] for p in doc["points"]] == [2, 4, 8, 16]
    assert doc["points"][2] == {
        "round": 1,
        "size": 8,
        "tps": 2300,
        "p50_ms": 75.0,
        "p99_ms": 150,
        "errors": 0,
    }

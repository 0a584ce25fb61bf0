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

from toolkit.adapters import pgbouncer
from toolkit.cli.app import main
from toolkit.cli.calibrate import sample

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "tests" / "fixtures" / "inventories" / "small.yml")


def stats(xacts: int, queries: int, xact_us: int, query_us: int) -> list[dict[str, Any]]:
    """SHOW STATS of a PgBouncer with one pool, app, and the admin pseudo-database."""
    return [
        {"database": "pgbouncer", "total_xact_count": xacts, "total_query_count": xacts},
        {
            "database": "app",
            "total_xact_count": xacts,
            "total_query_count": queries,
            "total_xact_time": xact_us,
            "total_query_time": query_us,
            "avg_xact_time": 1,
        },
    ]


class FakeConsole:
    """Answers SHOW STATS from a script of samples; records that it was closed."""

    script: ClassVar[list[list[dict[str, Any]]]] = []
    closed = 0

    def __init__(self, target: pgbouncer.AdminTarget, timeout: float = 5.0) -> None:
        self.target = target
        self._samples: Iterator[list[dict[str, Any]]] = iter(FakeConsole.script)

    def rows(self, command: str) -> list[dict[str, Any]]:
        assert command == "SHOW STATS"
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
    return int(str(exc.value.code)), out, err


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

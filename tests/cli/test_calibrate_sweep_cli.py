"""``toolkit calibrate --sweep --write``: the advised line lands in a vars file and the plan follows it.

The admin console and pgbench are faked (the sweep's live part is tested on the lab in
tests/integration/test_calibrate_sweep_lab.py); the inventory, the vars file and ``toolkit plan`` are real.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.cli.streams import without_inventory_line
from toolkit.adapters import pgbench, pgbouncer
from toolkit.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
HOST = "app1.example.internal"
LINE = "pgbouncer_default_pool_size: 8"


class Console:
    """An admin console the fake sweep is handed; counts how often it is opened."""

    opened = 0

    def __init__(self, target: pgbouncer.AdminTarget, timeout: float = 5.0) -> None:
        Console.opened += 1

    def __enter__(self) -> Console:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def _point(size: int, tps: float, p99: float) -> pgbench.SweepPoint:
    return pgbench.SweepPoint(size, pgbench.Result(tps, int(tps * 10), 0, 0, p99 / 2, p99, 0))


CURVE = [_point(2, 1400, 300), _point(4, 2000, 200), _point(8, 2300, 150), _point(16, 2390, 140)]


@pytest.fixture
def swept(monkeypatch: pytest.MonkeyPatch) -> list[pgbench.SweepPoint]:
    """A sweep that returns ``swept``'s points (CURVE unless a test replaces them) and restores 22."""
    points = list(CURVE)

    def fake_sweep(console: Any, endpoint: pgbench.Endpoint, sizes: list[int], **kw: Any) -> Any:
        return 22, list(points)

    Console.opened = 0
    monkeypatch.setattr(pgbouncer, "AdminConsole", Console)
    monkeypatch.setattr(pgbench, "dataset_scale", lambda *a, **k: 10)
    monkeypatch.setattr(pgbench, "sweep", fake_sweep)
    return points


@pytest.fixture
def inventory(tmp_path: Path) -> Path:
    """A copy of inventory/example-colocated (four single-process PgBouncers, pool 22 each)."""
    copy = tmp_path / "inventory"
    shutil.copytree(ROOT / "inventory" / "example-colocated", copy)
    (copy / "host_vars").mkdir()
    return copy


def calibrate(capsys: pytest.CaptureFixture[str], inv: Path, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "-i", str(inv), "--secrets", "/nonexistent", "--sweep", "--target", HOST, *args])
    out, err = capsys.readouterr()
    return int(str(exc.value.code)), out, without_inventory_line(err)


def pools(capsys: pytest.CaptureFixture[str], inv: Path) -> dict[str, int]:
    with pytest.raises(SystemExit) as exc:
        main(["plan", "-i", str(inv), "--format", "json"])
    out, _ = capsys.readouterr()
    assert exc.value.code == 0
    doc = json.loads(out)
    return {h: p["settings"]["default_pool_size"] for h, p in doc["pgbouncer"].items()}


def test_the_written_line_is_what_plan_then_gives(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert pools(capsys, inventory)[HOST] == 22
    target = inventory / "host_vars" / f"{HOST}.yml"
    code, out, err = calibrate(capsys, inventory, "--yes", "--write", str(target))
    assert (code, err) == (0, "")
    assert LINE in out.splitlines()
    assert f"created {target} ({LINE}); deploy it" in out
    text = target.read_text()
    assert text.startswith(f"---\n{LINE}  # toolkit calibrate --sweep ")
    assert text.rstrip().endswith("knee of 2,4,8,16,32,64 over 1 round (django, 38 clients, 10 s each)")
    after = pools(capsys, inventory)
    assert after[HOST] == 8
    assert {h: n for h, n in after.items() if h != HOST} == dict.fromkeys(set(after) - {HOST}, 22)


def test_an_existing_vars_file_keeps_its_keys_and_comments(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = inventory / "host_vars" / f"{HOST}.yml"
    target.write_text(
        "---\n# app1's PgBouncer\npgbouncer_default_pool_size: 30  # by hand\npgbouncer_admin_slots: 4\n"
    )
    target.chmod(0o640)
    code, out, _ = calibrate(capsys, inventory, "--yes", "--write", str(target), "--format", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["write"] == {"path": str(target), "status": "written", "previous": 30}
    lines = target.read_text().splitlines()
    assert lines[:2] == ["---", "# app1's PgBouncer"]
    assert lines[2].startswith(f"{LINE}  # toolkit calibrate --sweep ")
    assert lines[3:] == ["pgbouncer_admin_slots: 4"]
    assert target.stat().st_mode & 0o777 == 0o640
    assert pools(capsys, inventory)[HOST] == 8


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n", "vault-encrypted, the toolkit does not rewrite it"),
        ("- pgbouncer_default_pool_size: 20\n", "not a YAML mapping (a list)"),
    ],
)
def test_a_file_it_cannot_edit_is_refused_with_65_and_the_line_to_paste(
    swept: list[pgbench.SweepPoint],
    inventory: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    why: str,
) -> None:
    # Outside the inventory: inside it, the inventory could not be read without the vault password.
    target = inventory.parent / "app1.yml"
    target.write_text(text)
    code, out, err = calibrate(capsys, inventory, "--yes", "--write", str(target))
    assert code == 65
    assert LINE in out.splitlines()
    assert f"not written to {target}: paste the line above by hand" in out
    assert err == f"toolkit: {target}: {why}" + err.split(why, 1)[1]
    assert err.count("\n") == 1
    assert target.read_text() == text


def test_the_refusal_is_in_the_json_too(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = inventory.parent / "app1.yml"
    target.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n")
    code, out, _ = calibrate(capsys, inventory, "--yes", "--write", str(target), "--format", "json")
    doc = json.loads(out)
    assert code == 65
    assert doc["advice"]["line"] == LINE
    assert doc["write"]["status"] == "refused"
    assert "vault-encrypted" in doc["write"]["error"]


def test_another_hosts_vars_file_is_refused_before_anything_runs(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = inventory / "host_vars" / "app2.example.internal.yml"
    code, out, err = calibrate(capsys, inventory, "--yes", "--write", str(other))
    assert (code, out) == (64, "")
    assert err == (
        f"toolkit: Invalid value for '--write': {other} holds the variables of host app2.example.internal, "
        f"the sweep measures {HOST} (see --help)\n"
    )
    assert Console.opened == 0
    assert not other.exists()


def test_the_dry_run_says_where_it_would_write_and_writes_nothing(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = inventory / "group_vars" / "pgbouncer.yml"
    code, out, _ = calibrate(capsys, inventory, "--write", str(target))
    assert code == 0
    assert f"as the inventory line pgbouncer_default_pool_size: N for {HOST} (the plan gives 22 now)" in out
    assert f"5. write that line into {target}" in out
    assert Console.opened == 0
    assert not target.exists()


def test_write_without_sweep_is_a_usage_error(inventory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["calibrate", "-i", str(inventory), "--write", str(inventory / "x.yml")])
    assert exc.value.code == 64
    assert "--yes and --write act only with --sweep" in capsys.readouterr().err


def test_a_sweep_where_nothing_ran_gives_no_advice_and_exits_3(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    swept[:] = [_point(2, 0.0, 0.0), _point(4, 0.0, 0.0)]
    target = inventory / "host_vars" / f"{HOST}.yml"
    code, out, err = calibrate(capsys, inventory, "--yes", "--write", str(target))
    assert (code, out) == (3, "")
    assert err == (
        f"toolkit: sweep of {HOST}: no pool size of the sweep ran a transaction: nothing to compare; read "
        "pgbench's errors above, sweep again\n"
    )
    assert not target.exists()


def test_a_missing_directory_is_refused_before_anything_runs(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = inventory / "nope" / "app1.yml"
    code, out, err = calibrate(capsys, inventory, "--yes", "--write", str(target))
    assert (code, out) == (64, "")
    assert f"no directory {target.parent}: create it, or give an existing vars file" in err
    assert Console.opened == 0


# --- --rounds: every size once per round, the knee over the medians ---------------------------------


@pytest.mark.parametrize("rounds", ["0", "11", "x"])
def test_rounds_out_of_1_to_10_is_a_usage_error(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str], rounds: str
) -> None:
    code, out, err = calibrate(capsys, inventory, "--yes", "--rounds", rounds)
    assert (code, out) == (64, "")
    assert err == (
        "toolkit: Invalid value for '--rounds': must be a whole number from 1 to 10, written with ASCII "
        f"digits, got '{rounds}' (see --help)\n"
    )
    assert Console.opened == 0


def test_the_dry_run_names_the_rounds_their_order_and_the_total_load(
    swept: list[pgbench.SweepPoint], inventory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = calibrate(capsys, inventory, "--sizes", "4,8,16", "--duration", "10", "--rounds", "3")
    assert code == 0
    assert "in turn (checked in SHOW DATABASES), 3 rounds; once per round, odd rounds in this order" in out
    assert "through PgBouncer: 90 s of load (3 sizes x 3 rounds x 10 s)" in out
    assert Console.opened == 0
    code, out, _ = calibrate(capsys, inventory, "--rounds", "2", "--duration", "5", "--format", "json")
    sweep = json.loads(out)["sweep"]
    assert (code, sweep["rounds"], sweep["load_s"]) == (0, 2, 60.0)  # 6 sizes x 2 rounds x 5 s


def _rounds(monkeypatch: pytest.MonkeyPatch, tps: dict[int, list[float]]) -> dict[str, Any]:
    """Fake the sweep with ``tps[size][round - 1]`` (p99 100 ms everywhere); return what it was asked."""
    seen: dict[str, Any] = {}

    def fake_sweep(console: Any, endpoint: pgbench.Endpoint, sizes: list[int], **kw: Any) -> Any:
        seen.update(sizes=sizes, **kw)
        return 22, [
            pgbench.SweepPoint(s, _point(s, tps[s][r - 1], 100.0).result, r)
            for r in range(1, kw["rounds"] + 1)
            for s in sizes
        ]

    monkeypatch.setattr(pgbench, "sweep", fake_sweep)
    return seen


# One noisy pass would pick 16 (round 1: 8 is 0.85 of 16); the medians of three give 8.
NOISY = {4: [1000.0, 1000.0, 1000.0], 8: [1700.0, 2000.0, 2010.0], 16: [2000.0, 1990.0, 1950.0]}


def test_the_json_keeps_every_round_and_the_knee_reads_the_medians(
    swept: list[pgbench.SweepPoint],
    inventory: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen = _rounds(monkeypatch, NOISY)
    code, out, _ = calibrate(
        capsys, inventory, "--yes", "--sizes", "4,8,16", "--rounds", "3", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 0
    assert seen["rounds"] == 3
    assert [(p["round"], p["size"]) for p in doc["points"]] == [(r, s) for r in (1, 2, 3) for s in (4, 8, 16)]
    assert doc["per_size"][1] == {
        "pool_size": 8,
        "rounds": 3,
        "tps": 2000.0,
        "p99_ms": 100.0,
        "tps_min": 1700.0,
        "tps_max": 2010.0,
    }
    assert [s["tps"] for s in doc["per_size"]] == [1000.0, 2000.0, 1990.0]
    assert doc["knee"] == 8
    assert doc["sweep"]["rounds"] == 3


def test_the_table_shows_medians_and_the_spread_and_the_written_line_names_the_rounds(
    swept: list[pgbench.SweepPoint],
    inventory: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _rounds(monkeypatch, NOISY)
    target = inventory / "host_vars" / f"{HOST}.yml"
    code, out, _ = calibrate(
        capsys, inventory, "--yes", "--sizes", "4,8,16", "--rounds", "3", "--write", str(target)
    )
    assert code == 0
    assert out.splitlines()[:4] == [
        "pool  TPS      p99 ms  TPS min-max  errors  (TPS and p99: medians of 3 rounds)",
        "4     1000     100.0   1000-1000    0",
        "8     2000     100.0   1700-2010    0",
        "16    1990     100.0   1950-2000    0",
    ]
    assert "knee: pool 8: 2000 TPS, 1.00 of the best (pool 8, 2000 TPS)" in out
    assert (
        target.read_text().rstrip().endswith("knee of 4,8,16 over 3 rounds (django, 38 clients, 10 s each)")
    )

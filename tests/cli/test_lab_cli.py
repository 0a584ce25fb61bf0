"""``toolkit lab drill``: names, exit codes and the report's rendering, with a fake lab and drill."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import toolkit.drills
import toolkit.drills.lab
from toolkit.cli.app import main
from toolkit.domain.drills import DrillReport
from toolkit.drills.lab import Lab, Node

INVENTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["lab", "drill", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    lab = Lab("inventory/lab", (Node("app-1", "wsgi_gthread", 8001), Node("app-2", "asgi", 8002)))
    monkeypatch.setattr(toolkit.drills.lab.Lab, "load", classmethod(lambda cls, path: lab))
    monkeypatch.setattr(toolkit.drills.lab.Lab, "check_up", lambda self: None)


def _fake(ok: bool) -> object:
    def run(lab: Lab, seconds: float) -> DrillReport:
        report = DrillReport("pool-exhaustion", "fake")
        report.measurements["before"] = {
            "url": "u",
            "connections": 8,
            "seconds": seconds,
            "requests": 10,
            "rps": 500.0,
            "ok_rps": 500.0,
            "p50_ms": 3.0,
            "p99_ms": 9.0,
            "errors": 0,
        }
        report.claim("throughput recovers", ok, "480 vs 500 req/s")
        return report

    return run


def test_unknown_drill_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "nope")
    assert code == 64 and out == ""
    assert "no drill 'nope'; choose one of pool-exhaustion" in err


def test_too_short_a_load_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "all", "--seconds", "0.5")
    assert code == 64 and "--seconds" in err


def test_an_inventory_without_demo_nodes_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run(capsys, "pool-exhaustion", "-i", str(INVENTORIES / "small.yml"))
    assert code == 65
    assert "django_demo_port: no host of group 'django'" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


@pytest.mark.usefixtures("fake_lab")
@pytest.mark.parametrize(("ok", "expected"), [(True, 0), (False, 2)])
def test_exit_code_follows_the_claims(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, ok: bool, expected: int
) -> None:
    monkeypatch.setitem(toolkit.drills.DRILLS, "pool-exhaustion", ("fake", _fake(ok)))
    code, out, _ = _run(capsys, "pool-exhaustion", "--format", "json")
    assert code == expected
    doc = json.loads(out)
    assert doc["schema"] == "toolkit.drill/v1"
    (drill,) = doc["drills"]
    assert drill["ok"] is ok and drill["claims"][0]["figure"] == "480 vs 500 req/s"
    assert drill["measurements"]["before"]["rps"] == 500.0


@pytest.mark.usefixtures("fake_lab")
def test_table_shows_phases_claims_and_verdict(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(toolkit.drills.DRILLS, "pool-exhaustion", ("fake", _fake(False)))
    code, out, _ = _run(capsys, "pool-exhaustion")
    assert code == 2
    assert "before" in out and "500" in out and "throughput recovers" in out
    assert "FAIL pool-exhaustion" in out

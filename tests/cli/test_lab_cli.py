"""``python -m lab.drills`` (lab code, from the checkout): names, exit codes and the report's rendering,
with a fake lab and drill."""

from __future__ import annotations

import doctest
import importlib
import json
from pathlib import Path

import pytest

import lab.drills.cli
import lab.drills.harness
from lab.drills.cli import main
from lab.drills.harness import Lab, Node
from lab.drills.report import DrillReport

INVENTORIES = Path(__file__).resolve().parents[1] / "fixtures" / "inventories"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


@pytest.fixture
def fake_lab(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = Lab("inventory/lab", (Node("app-1", "wsgi_gthread", 8001), Node("app-2", "asgi", 8002)))
    monkeypatch.setattr(lab.drills.harness.Lab, "load", classmethod(lambda cls, path: fake))
    monkeypatch.setattr(lab.drills.harness.Lab, "check_up", lambda self: None)


def _fake(ok: bool) -> object:
    def run(_lab: Lab, seconds: float) -> DrillReport:
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
    monkeypatch.setitem(lab.drills.cli.DRILLS, "pool-exhaustion", ("fake", _fake(ok)))
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
    monkeypatch.setitem(lab.drills.cli.DRILLS, "pool-exhaustion", ("fake", _fake(False)))
    code, out, _ = _run(capsys, "pool-exhaustion")
    assert code == 2
    assert "before" in out and "500" in out and "throughput recovers" in out
    assert "FAIL pool-exhaustion" in out


@pytest.mark.parametrize("module", ["lab.drills.http_load", "lab.drills.report", "lab.drills.harness"])
def test_the_lab_modules_doctests(module: str) -> None:
    """`make cli` runs them: the lab's modules are outside the paths `make unit` collects doctests from."""
    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted and not result.failed

"""``toolkit doctor --offline --django-settings``: the real probe, the lab inventory, no network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.streams import without_inventory_line
from toolkit.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = ROOT / "tests" / "fixtures" / "django_settings"
LAB = ROOT / "inventory" / "lab"


def run(capsys: pytest.CaptureFixture[str], module: str) -> tuple[int, str, str]:
    args = [
        "doctor",
        "-i",
        str(LAB),
        "--offline",
        "--format",
        "json",
        "--django-settings",
        module,
        "--django-pythonpath",
        str(SETTINGS),
    ]
    with pytest.raises(SystemExit) as done:
        main(args)
    out, err = capsys.readouterr()
    return int(done.value.code or 0), out, without_inventory_line(err)


def test_every_problem_is_reported_offline(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "every_problem")
    report = json.loads(out)
    ids = {f["id"] for f in report["findings"]}
    assert code == 2
    assert report["targets"] == []
    assert {
        "django.server_side_cursors_with_transaction_pooling",
        "django.persistent_connections_under_asgi",
        "cache.local_memory_multi_process",
        "cache.no_key_prefix_shared_redis",
        "django.asgi_without_admission_bound",
    } <= ids


def test_healthy_settings_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "healthy_behind_pgbouncer")
    assert (code, json.loads(out)["findings"]) == (0, [])


def test_settings_that_fail_to_import_exit_65_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "fails_to_import")
    assert (code, out) == (65, "")
    assert err.startswith(
        "toolkit: inventory: --django-settings: cannot import settings module 'fails_to_import'"
    )
    assert err.count("\n") == 1


def test_settings_need_a_pythonpath(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", str(LAB), "--offline", "--django-settings", "x"])
    assert done.value.code == 64
    assert "needs --django-pythonpath" in capsys.readouterr().err

"""``toolkit doctor --no-django-nodes``: no app node is read over SSH (a monitor host has no SSH to them)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolkit.cli.app import main

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"


def doctor(capsys: pytest.CaptureFixture[str], inventory: Path, *extra: str) -> tuple[int, dict[str, object]]:
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", str(inventory), "--offline", "--format", "json", "--timeout", "1", *extra])
    out, _ = capsys.readouterr()
    return int(done.value.code or 0), json.loads(out)


def test_the_app_nodes_are_not_read_with_the_option(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "lab"
    shutil.copytree(LAB, inventory)
    # An SSH route that cannot work here: without the option, every app node is an unread target.
    (inventory / "group_vars" / "django").mkdir()
    (inventory / "group_vars" / "django" / "ssh.yml").write_text(
        f"---\nansible_ssh_common_args: -F {tmp_path}/no_such_ssh_config\n"
    )
    code, report = doctor(capsys, inventory)
    targets = report["targets"]
    assert isinstance(targets, list)
    assert code == 3, report
    assert {t["name"] for t in targets if not t["ok"]} == {"django:app1", "django:app2"}, targets
    code, report = doctor(capsys, inventory, "--no-django-nodes")
    assert (code, report["targets"]) == (0, []), report

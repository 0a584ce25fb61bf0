"""doctor refuses, before any connection, an app node's SSH variables it cannot use (exit 65, one line)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.cli.streams import without_inventory_line
from toolkit.cli.app import main

LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"


@pytest.mark.parametrize(
    ("variables", "line"),
    [
        (
            'ansible_ssh_common_args: "-F {{ ssh_dir }}/config"',
            "toolkit: inventory: ansible_ssh_common_args (host app1): holds a template the toolkit does not "
            "resolve (only {{ inventory_dir }}); write it literally",
        ),
        (
            "ansible_port: twenty-two",
            "toolkit: inventory: ansible_port (host app1): must be a port number, got 'twenty-two'",
        ),
    ],
)
def test_unusable_ssh_variables_exit_65_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], variables: str, line: str
) -> None:
    inventory = tmp_path / "lab"
    shutil.copytree(LAB, inventory)
    (inventory / "host_vars").mkdir(exist_ok=True)
    (inventory / "host_vars" / "app1.yml").write_text(f"---\n{variables}\n")
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", str(inventory), "--offline", "--format", "json"])
    out, err = capsys.readouterr()
    assert (done.value.code, out) == (65, "")
    assert without_inventory_line(err) == line + "\n"

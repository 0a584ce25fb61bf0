"""Which inventory a command reads without -i: the one ansible would (issue 11 §1).

ANSIBLE_INVENTORY, else ``inventory =`` of the first ansible.cfg of ANSIBLE_CONFIG, ./ansible.cfg (not
in a world-writable directory), ~/.ansible.cfg; relative paths against the ansible.cfg's directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from toolkit.adapters.inventory import InventorySource, Vault, ansible_config, resolve
from toolkit.domain.errors import InventoryError


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    cwd, home = tmp_path / "cwd", tmp_path / "home"
    cwd.mkdir(mode=0o755)
    home.mkdir()
    cwd.chmod(0o755)
    return cwd, home


def test_i_wins(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    env = {"ANSIBLE_INVENTORY": "/elsewhere"}
    assert resolve("inv", env, cwd, home) == InventorySource(("inv",), "-i")


def test_ansible_inventory_beats_ansible_cfg(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / "ansible.cfg").write_text("[defaults]\ninventory = ./from-cfg\n")
    got = resolve(None, {"ANSIBLE_INVENTORY": "a, /b"}, cwd, home)
    assert got == InventorySource((str(cwd / "a"), "/b"), "ANSIBLE_INVENTORY")


def test_cwd_ansible_cfg_relative_to_its_directory(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / "ansible.cfg").write_text(
        "[defaults]\nroles_path = ./roles\ninventory = ./inventory/lab ; a comment\n"
    )
    got = resolve(None, {}, cwd, home)
    assert got is not None and got.paths == (str(cwd / "inventory" / "lab"),)
    assert got.origin == f"ansible.cfg {cwd / 'ansible.cfg'}"


def test_ansible_config_beats_cwd_and_may_name_a_directory(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / "ansible.cfg").write_text("[defaults]\ninventory = ./cwd-inv\n")
    other = tmp_path / "other"
    other.mkdir()
    (other / "ansible.cfg").write_text("[defaults]\ninventory = hosts.ini\n")
    for given in (other, other / "ansible.cfg"):
        got = resolve(None, {"ANSIBLE_CONFIG": str(given)}, cwd, home)
        assert got is not None and got.paths == (str(other / "hosts.ini"),)


def test_home_cfg_when_cwd_has_none_and_none_when_nothing_names_one(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (home / ".ansible.cfg").write_text("[defaults]\ninventory = ~/inv\n")
    got = resolve(None, {"HOME": str(home)}, cwd, home)
    assert got is not None and got.paths[0].endswith("/inv")
    (home / ".ansible.cfg").write_text("[defaults]\nforks = 5\n")
    if not Path("/etc/ansible/hosts").exists() and not Path("/etc/ansible/ansible.cfg").exists():
        assert resolve(None, {}, cwd, home) is None


def test_a_world_writable_cwd_is_ignored_as_ansible_does(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / "ansible.cfg").write_text("[defaults]\ninventory = ./inv\n")
    cwd.chmod(0o777)
    try:
        assert ansible_config({}, cwd, home) in (None, Path("/etc/ansible/ansible.cfg"))
    finally:
        cwd.chmod(0o755)


def test_an_unreadable_ansible_cfg_is_one_line(tmp_path: Path) -> None:
    cwd, home = _dirs(tmp_path)
    (cwd / "ansible.cfg").write_text("inventory = no section\n")
    with pytest.raises(InventoryError, match=r"ansible\.cfg: unreadable \(.*\); fix it or pass -i$"):
        resolve(None, {}, cwd, home)


def test_vault_arguments_are_ansible_playbooks() -> None:
    assert Vault().args() == []
    assert Vault("pw").args() == ["--vault-password-file", "pw"]
    assert Vault("pw", ask=True).args() == ["--vault-password-file", "pw", "--ask-vault-pass"]

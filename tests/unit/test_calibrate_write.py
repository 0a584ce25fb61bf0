"""calibrate's line into a vars file: the line edit (domain) and the checked, atomic write (adapter)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from toolkit.adapters.vars_file import set_variable
from toolkit.domain.errors import InputDataError
from toolkit.domain.vars_file import is_vault_encrypted, set_top_level_key

KEY = "pgbouncer_default_pool_size"
HOST_VARS = """\
---
# pgb1: the staging PgBouncer
pgbouncer_listen_addr: 10.0.0.5   # the private address
pgbouncer_default_pool_size: 20
toolkit_acknowledged_cves:
  - CVE-2025-2291   # fixed upstream

# Two processes would need peers.
pgbouncer_processes: 1
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (HOST_VARS, HOST_VARS.replace("size: 20", "size: 8")),
        ("a: 1\n", "a: 1\npgbouncer_default_pool_size: 8\n"),
        ("a: 1", "a: 1\npgbouncer_default_pool_size: 8\n"),  # no newline at the end
        ("", "---\npgbouncer_default_pool_size: 8\n"),
        ("# only a comment\n", "# only a comment\npgbouncer_default_pool_size: 8\n"),
        # A block value is replaced with its lines, the blank line and the next key stay.
        (f"{KEY}:\n  - 1\n  - 2\n\nb: 2\n", f"{KEY}: 8\n\nb: 2\n"),
        (f"{KEY}:\n- 1\n# after\nb: 2\n", f"{KEY}: 8\n# after\nb: 2\n"),
        # A longer key with the same prefix is another key.
        (f"{KEY}_max: 3\n", f"{KEY}_max: 3\n{KEY}: 8\n"),
        # An indented key belongs to some other mapping.
        (f"x:\n  {KEY}: 3\n", f"x:\n  {KEY}: 3\n{KEY}: 8\n"),
    ],
)
def test_the_line_edit_replaces_the_key_or_appends_it(text: str, expected: str) -> None:
    assert set_top_level_key(text, KEY, 8) == expected


def test_the_line_carries_its_comment() -> None:
    out = set_top_level_key("a: 1\n", KEY, 8, "toolkit calibrate --sweep 2026-12-01")
    assert out == f"a: 1\n{KEY}: 8  # toolkit calibrate --sweep 2026-12-01\n"


def test_the_line_edit_refuses_a_name_that_is_not_a_variable() -> None:
    with pytest.raises(ValueError, match="not a plain variable name"):
        set_top_level_key("", "a: b", 1)


def test_vault_files_are_recognised() -> None:
    assert is_vault_encrypted("\n$ANSIBLE_VAULT;1.2;AES256;prod\n3961\n")
    assert not is_vault_encrypted("secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3961\n")


def test_an_existing_file_keeps_its_mode_other_keys_and_comments(tmp_path: Path) -> None:
    path = tmp_path / "pgb1.yml"
    path.write_text(HOST_VARS)
    path.chmod(0o600)
    done = set_variable(path, KEY, 8, "swept")
    text = path.read_text()
    assert text == HOST_VARS.replace("size: 20", "size: 8  # swept")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert (done.created, done.previous) == (False, 20)
    assert yaml.safe_load(text)[KEY] == 8
    assert [p.name for p in tmp_path.iterdir()] == ["pgb1.yml"]  # no temporary file left


def test_a_missing_file_is_created_as_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "pgb1.yml"
    done = set_variable(path, KEY, 8)
    assert path.read_text() == f"---\n{KEY}: 8\n"
    assert (done.created, done.previous) == (True, None)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_ansible_tags_elsewhere_do_not_stop_the_write(tmp_path: Path) -> None:
    path = tmp_path / "pgb1.yml"
    text = "secret: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  3961\nraw: !unsafe '{{ x }}'\n"
    path.write_text(text)
    set_variable(path, KEY, 4)
    assert path.read_text() == text + f"{KEY}: 4\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n", "vault-encrypted, the toolkit does not rewrite it"),
        ("- a\n- b\n", "not a YAML mapping (a list)"),
        ("just a string\n", "not a YAML mapping (a str)"),
        ("a: [1\n", "not valid YAML (line 2)"),
        ("{a: 1, pgbouncer_default_pool_size: 20}\n", "the line edit would change more than"),
        (f"{KEY}: 1\nb: 2\n{KEY}: 3\n", "the line edit would change more than"),
        ("a: 1\n---\nb: 2\n", "not valid YAML"),
    ],
)
def test_a_file_the_edit_cannot_handle_is_refused_and_left_as_it_was(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "pgb1.yml"
    path.write_text(text)
    with pytest.raises(InputDataError, match="^" + str(path).replace(".", r"\.") + ": ") as exc:
        set_variable(path, KEY, 8)
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    assert path.read_text() == text


def test_a_link_a_directory_or_a_missing_directory_is_refused(tmp_path: Path) -> None:
    real = tmp_path / "real.yml"
    real.write_text("a: 1\n")
    link = tmp_path / "link.yml"
    os.symlink(real, link)
    with pytest.raises(InputDataError, match="not a regular file"):
        set_variable(link, KEY, 8)
    with pytest.raises(InputDataError, match="not a regular file"):
        set_variable(tmp_path, KEY, 8)
    with pytest.raises(InputDataError, match="no directory"):
        set_variable(tmp_path / "nope" / "pgb1.yml", KEY, 8)
    assert real.read_text() == "a: 1\n"

"""Issue 13 §2 and issue 11 §1, §3: one context for every command that reads an inventory.

The shared options (-i, --secrets, --vault-password-file, --ask-vault-pass) on every such command; the
inventory ansible would read when -i is left out, and the line naming it on stderr; a vault-encrypted
group_vars file read with the flag, ANSIBLE_VAULT_PASSWORD_FILE or ansible.cfg's vault_password_file,
and refused in one line (exit 65) without a password or with a wrong one. Runs the real
ansible-inventory and ansible-vault; no live target is read (doctor --offline).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.streams import INVENTORY_LINE, without_inventory_line
from toolkit.cli.app import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "inventory" / "example-tier"
PASSWORD = "correct horse battery"
BIN = Path(sys.executable).parent


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A working directory and home with no ansible.cfg, and no ansible variable in the environment."""
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_INVENTORY", "ANSIBLE_VAULT_PASSWORD_FILE"):
        monkeypatch.delenv(name, raising=False)
    work = tmp_path / "work"
    work.mkdir(mode=0o755)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def vaulted(clean_env: Path) -> tuple[Path, Path]:
    """A copy of the example inventory whose group_vars/all is vault-encrypted, and its password file."""
    inv = clean_env / "inv"
    shutil.copytree(EXAMPLE, inv)
    secret = clean_env / "vault-pass"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(0o600)
    target = inv / "group_vars" / "all" / "main.yml"
    subprocess.run(
        [BIN / "ansible-vault", "encrypt", "--vault-password-file", str(secret), str(target)],
        check=True,
        capture_output=True,
    )
    assert target.read_text().startswith("$ANSIBLE_VAULT;")
    return inv, secret


def _plain_plan(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    code, out, _ = run(capsys, "plan", "-i", str(EXAMPLE), "--format", "json")
    assert code == 0
    return dict(json.loads(out))


def test_plan_reads_a_vaulted_inventory_with_the_flag(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path]
) -> None:
    inv, secret = vaulted
    code, out, err = run(capsys, "plan", "-i", str(inv), "--vault-password-file", str(secret), "-f", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == _plain_plan(capsys)


def test_without_a_vault_password_plan_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path]
) -> None:
    inv, _ = vaulted
    code, out, err = run(capsys, "plan", "-i", str(inv), "--format", "json")
    assert (code, out) == (65, "")
    assert err.startswith(f"toolkit: inventory: {inv}: ansible-inventory failed: ")
    assert "pass --vault-password-file FILE or --ask-vault-pass" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_wrong_vault_password_fails_in_one_line(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path], tmp_path: Path
) -> None:
    inv, _ = vaulted
    wrong = tmp_path / "wrong"
    wrong.write_text("not the password\n")
    code, out, err = run(capsys, "plan", "-i", str(inv), "--vault-password-file", str(wrong))
    assert (code, out) == (65, "")
    assert "Decryption failed" in err and "the vault password is wrong" in err
    assert err.count("\n") == 1 and "Traceback" not in err and "not the password" not in err


def test_a_missing_vault_password_file_is_named(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path]
) -> None:
    inv, _ = vaulted
    code, _, err = run(capsys, "plan", "-i", str(inv), "--vault-password-file", "/nonexistent/pass")
    assert code == 65
    assert err == (
        "toolkit: inventory: --vault-password-file: /nonexistent/pass: no such file; "
        "pass the vault password file\n"
    )


def test_ansible_vault_password_file_is_honoured(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    inv, secret = vaulted
    monkeypatch.setenv("ANSIBLE_VAULT_PASSWORD_FILE", str(secret))
    code, out, _ = run(capsys, "plan", "-i", str(inv), "--format", "json")
    assert code == 0 and json.loads(out) == _plain_plan(capsys)


def test_ansible_cfg_gives_the_inventory_and_the_vault_password_file(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path], clean_env: Path
) -> None:
    (clean_env / "ansible.cfg").write_text(
        "[defaults]\ninventory = ./inv\nvault_password_file = ./vault-pass\n"
    )
    code, out, err = run(capsys, "plan", "--format", "json")
    assert (code, err) == (0, "")
    assert json.loads(out) == _plain_plan(capsys)
    # doctor says which inventory it read, on stderr; stdout stays one JSON document.
    code, out, err = run(capsys, "doctor", "--offline", "--format", "json")
    assert err.startswith("toolkit: inventory inv (from ansible.cfg ansible.cfg)\n"), err
    assert json.loads(out)["schema"]
    assert PASSWORD not in out + err


def test_ask_vault_pass_reads_the_password_where_ansible_prompts(vaulted: tuple[Path, Path]) -> None:
    """No terminal (a new session): ansible's prompt falls back to stdin; stdout stays the JSON."""
    inv, _ = vaulted
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    argv = [str(BIN / "toolkit"), "plan", "-i", str(inv), "--ask-vault-pass", "--format", "json"]
    for typed, code in ((PASSWORD, 0), ("not-it-7f3a", 65)):
        proc = subprocess.run(
            argv,
            input=typed + "\n",
            capture_output=True,
            text=True,
            env=env,
            start_new_session=True,
            check=False,
        )
        assert proc.returncode == code, proc.stderr
        assert typed not in proc.stdout + proc.stderr
        if code == 0:
            assert json.loads(proc.stdout)["schema"] == "toolkit.plan/v1"
        else:
            assert proc.stdout == "" and "the vault password is wrong" in proc.stderr


def test_without_i_or_ansible_cfg_it_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], clean_env: Path
) -> None:
    if Path("/etc/ansible/hosts").exists() or Path("/etc/ansible/ansible.cfg").exists():
        pytest.skip("this machine has ansible's own default inventory or configuration")
    code, out, err = run(capsys, "plan")
    assert (code, out) == (64, "")
    assert "no inventory: pass -i FILE_OR_DIR, or set inventory = in ansible.cfg" in err
    assert err.count("\n") == 1


def test_ansible_inventory_beats_ansible_cfg_and_i_beats_both(
    capsys: pytest.CaptureFixture[str], clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_env / "ansible.cfg").write_text("[defaults]\ninventory = /nonexistent/from-cfg\n")
    code, _, err = run(capsys, "doctor", "--offline", "--format", "json")
    assert code == 65 and err.startswith(
        "toolkit: inventory /nonexistent/from-cfg (from ansible.cfg ansible.cfg)\n"
    )
    monkeypatch.setenv("ANSIBLE_INVENTORY", str(EXAMPLE))
    code, _, err = run(capsys, "doctor", "--offline", "--format", "json")
    line = INVENTORY_LINE.match(err)
    assert line is not None and (line["paths"], line["origin"]) == (str(EXAMPLE), "ANSIBLE_INVENTORY"), err
    code, _, err = run(capsys, "doctor", "--offline", "-i", str(EXAMPLE), "--format", "json")
    assert err.startswith(f"toolkit: inventory {EXAMPLE} (from -i)\n")


@pytest.mark.parametrize(
    "command",
    [["plan"], ["doctor"], ["watch"], ["calibrate"], ["runbook", "run"], ["audit", "queries"]],
)
def test_every_command_that_reads_an_inventory_takes_the_shared_options(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, out, _ = run(capsys, *command, "--help")
    assert code == 0
    text = " ".join(out.split())
    for flag in ("-i, --inventory", "--vault-password-file FILE", "--ask-vault-pass", "ANSIBLE_INVENTORY"):
        assert flag in text, (command, flag)
    if command != ["plan"]:
        assert "--secrets" in text


@pytest.mark.parametrize(
    "command",
    [
        ["watch", "--count", "1"],
        ["calibrate", "--window", "0.01"],
        ["calibrate", "--sweep"],
        ["runbook", "run", "pgbouncer-resize-pool"],
        ["audit", "queries"],
    ],
)
def test_a_vaulted_inventory_without_a_password_stops_every_command_before_any_target(
    capsys: pytest.CaptureFixture[str], vaulted: tuple[Path, Path], command: list[str]
) -> None:
    inv, _ = vaulted
    code, out, err = run(capsys, *command, "-i", str(inv))
    assert (code, out) == (65, "")
    rest = without_inventory_line(err)
    assert rest.startswith(f"toolkit: inventory: {inv}: ansible-inventory failed: ") and rest.count("\n") == 1


def test_load_context_resolves_the_admin_user_once_with_its_one_default(tmp_path: Path) -> None:
    from toolkit.cli.context import load_context  # noqa: PLC0415

    small = ROOT / "tests" / "fixtures" / "inventories" / "small.yml"
    ctx = load_context(str(small), str(tmp_path))
    (pgb,) = ctx.of_kind("pgbouncer")
    assert (pgb.name, pgb.admin_user, pgb.user) == ("pgb1", "pgbouncer_admin", "pgbouncer_stats")
    assert ctx.source.describe() == f"{small} (from -i)" and ctx.secrets.directory == tmp_path
    assert ctx.plan is not None and ctx.plan_error is None
    text = small.read_text().replace(
        "        pgb1:\n", "        pgb1:\n          toolkit_pgbouncer_admin_user: ops\n"
    )
    assert text != small.read_text()
    other = tmp_path / "admin.yml"
    other.write_text(text)
    (pgb,) = load_context(str(other)).of_kind("pgbouncer")
    assert pgb.admin_user == "ops"


def test_an_empty_i_is_a_usage_error_not_the_default(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "plan", "-i", "")
    assert (code, out) == (64, "")
    assert (
        err == "toolkit: Invalid value for '-i': is empty; pass an inventory file or directory (see --help)\n"
    )

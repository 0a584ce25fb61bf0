"""Reading a node's Django settings over SSH: the connection from Ansible's variables, the argv, the
error lines, and the program sent on stdin (run here for real with this interpreter, as the node would)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.adapters import ssh
from toolkit.adapters.django_settings import _parse, remote_command, remote_script
from toolkit.adapters.errors import TargetError
from toolkit.domain.django import DjangoProfile
from toolkit.domain.errors import InventoryError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "django_settings"
LAB = Path(__file__).resolve().parents[2] / "inventory" / "lab"


def test_lab_connection_resolves_inventory_dir_in_the_common_args() -> None:
    hv = {
        "ansible_host": "198.18.0.13",
        "ansible_user": "ops",
        "ansible_ssh_common_args": "-F {{ inventory_dir }}/../../.lab/fleet/ssh_config",
    }
    target = ssh.ssh_target("app1", hv, ssh.inventory_dir(str(LAB)))
    assert target.options == ("-F", f"{LAB}/../../.lab/fleet/ssh_config")
    argv = ssh.ssh_argv(target, ["/opt/venv/bin/python", "-"], 10)
    assert argv == [
        "ssh",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=10",
        "-l",
        "ops",
        "-F",
        f"{LAB}/../../.lab/fleet/ssh_config",
        "--",
        "198.18.0.13",
        "/opt/venv/bin/python -",
    ]


def test_inventory_dir_of_a_file_is_its_directory(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts.yml"
    hosts.write_text("---\n")
    assert ssh.inventory_dir(str(hosts)) == tmp_path
    assert ssh.inventory_dir(str(tmp_path)) == tmp_path
    assert ssh.inventory_dir(f"{tmp_path},{hosts}") is None


def test_port_key_and_extra_args_go_in_the_argv(tmp_path: Path) -> None:
    hv = {
        "ansible_host": "db.example",
        "ansible_port": "2222",
        "ansible_ssh_private_key_file": "keys/id",
        "ansible_ssh_extra_args": "-o 'ProxyJump=bastion one'",
    }
    target = ssh.ssh_target("db", hv, tmp_path)
    argv = ssh.ssh_argv(target, ["python3", "-"], 3)
    assert argv[5:9] == ["-p", "2222", "-i", str(tmp_path / "keys" / "id")]
    assert argv[9:] == ["-o", "ProxyJump=bastion one", "--", "db.example", "python3 -"]


@pytest.mark.parametrize(
    ("hv", "variable", "why"),
    [
        (
            {"ansible_ssh_common_args": "-F {{ ssh_dir }}/cfg"},
            "ansible_ssh_common_args",
            "write it literally",
        ),
        ({"ansible_port": "ssh"}, "ansible_port", "must be a port number, got 'ssh'"),
        ({"ansible_port": 70000}, "ansible_port", "must be 1-65535, got 70000"),
        ({"ansible_user": "{{ user }}"}, "ansible_user", "must be a literal string"),
        ({"ansible_ssh_common_args": "-o 'unclosed"}, "ansible_ssh_common_args", "cannot split"),
    ],
)
def test_connection_variables_the_toolkit_cannot_use_are_refused(
    hv: dict[str, object], variable: str, why: str
) -> None:
    with pytest.raises(InventoryError) as caught:
        ssh.ssh_target("app1", hv, Path("/inv"))
    assert caught.value.variable == variable and caught.value.host == "app1"
    assert why in caught.value.why
    assert "\n" not in str(caught.value)


def test_inventory_dir_without_a_single_inventory_is_refused() -> None:
    with pytest.raises(InventoryError, match=r"several paths; pass one with -i"):
        ssh.ssh_target("app1", {"ansible_ssh_common_args": "-F {{inventory_dir}}/c"}, None)


@pytest.mark.parametrize(
    ("hv", "local"),
    [
        ({"ansible_connection": "local", "ansible_host": "198.18.0.13"}, True),
        ({"ansible_host": "127.0.0.1"}, True),
        ({"ansible_host": "::1"}, True),
        ({"ansible_host": "198.18.0.13"}, False),
        ({"ansible_host": "app1.example"}, False),
        ({}, False),
    ],
)
def test_which_nodes_are_read_on_this_machine(hv: dict[str, object], local: bool) -> None:
    assert ssh.is_local("app1", hv) is local


TARGET = ssh.SshTarget("app1", "198.18.0.13", "ops")


@pytest.mark.parametrize(
    ("stderr", "cause"),
    [
        ("ops@198.18.0.13: Permission denied (publickey).", "authentication failed"),
        ("ssh: connect to host 198.18.0.13 port 22: Connection timed out", "unreachable (connect timed out)"),
        ("ssh: connect to host 198.18.0.99 port 22: No route to host", "unreachable (No route to host)"),
        ("ssh: connect to host 198.18.0.13 port 22: Connection refused", "unreachable (Connection refused)"),
        ("ssh: Could not resolve hostname app9: Name or service not known", "host name does not resolve"),
        ("Host key verification failed.", "host key verification failed"),
        ("sudo: a password is required", "sudo refused"),
    ],
)
def test_ssh_failures_are_one_line_naming_the_host(stderr: str, cause: str) -> None:
    err = ssh.classify(TARGET, f"Warning: something\n{stderr}\n", "reading the Django settings")
    assert err.cause == cause
    assert str(err).startswith(f"ssh:app1@198.18.0.13: {cause} during reading the Django settings; ")
    assert "\n" not in str(err)


def test_a_missing_ssh_client_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ssh, "SSH", "/nonexistent/ssh")
    missing = r"^ssh:app1@198.18.0.13: cannot run /nonexistent/ssh \(No such file"
    with pytest.raises(TargetError, match=missing):
        ssh.run(TARGET, ["python3", "-"], "", 5, "reading the Django settings")


def test_remote_command_holds_no_secret_and_runs_as_the_app_user() -> None:
    env = {"SHOP_DB_PASSWORD": "fixture-secret-must-not-leak"}
    argv = ssh.ssh_argv(TARGET, remote_command("/opt/venv/bin/python", "app"), 10)
    assert argv[-1] == "sudo -n -u app -- /opt/venv/bin/python -"
    assert all("fixture-secret" not in a for a in argv)
    assert "fixture-secret-must-not-leak" in remote_script("m", "/srv", env)  # on stdin only


def _run_remote(module: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The program the node's interpreter reads on stdin, run with this interpreter from an empty cwd."""
    return subprocess.run(
        [sys.executable, "-"],
        input=remote_script(module, str(FIXTURES), env or {}),
        env={"PATH": "/usr/bin:/bin"},
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_program_on_stdin_prints_the_profile_without_the_toolkit_on_the_path() -> None:
    done = _run_remote("healthy_behind_pgbouncer")
    assert done.returncode == 0, done.stderr
    assert "must-not-leak" not in done.stdout
    profile = _parse(done, "healthy_behind_pgbouncer", str(FIXTURES), "python3", "app1")
    assert isinstance(profile, DjangoProfile)
    assert profile.caches[0].location == ("redis://:***@127.0.0.1:6379/0",)
    assert json.loads(done.stdout)["schema"] == "toolkit.django-profile/v1"


def test_the_program_on_stdin_masks_an_environment_secret_in_an_import_error() -> None:
    done = _run_remote("raises_with_env_secret", {"SHOP_DB_PASSWORD": "fixture-secret-must-not-leak"})
    assert done.returncode == 65
    assert "fixture-secret" not in done.stderr
    with pytest.raises(InventoryError) as caught:
        _parse(done, "raises_with_env_secret", str(FIXTURES), "python3", "app1")
    assert caught.value.host == "app1" and "cannot import settings module" in caught.value.why

"""Run one program on an inventory host over SSH, the way Ansible would reach it, under a deadline.

The connection comes from the host's Ansible variables (``ansible_host``, ``ansible_user``,
``ansible_port``, ``ansible_ssh_private_key_file``, ``ansible_ssh_common_args``,
``ansible_ssh_extra_args``, ``ansible_become``/``ansible_become_user`` are not used: the caller says
which user runs the program). ``ansible-inventory --list`` does not template values, so the one
template inventories commonly put in SSH arguments, ``{{ inventory_dir }}``, is resolved here from
the inventory's path; any other template is refused with one line saying to write it literally.

Only the program's path goes in the command line; its input (a script, an environment holding
secrets) goes on stdin, so nothing secret shows in ``ps`` on either machine. Every failure is one
:class:`~toolkit.adapters.errors.TargetError` naming the host: unreachable, authentication failed,
sudo refused, timed out.
"""

from __future__ import annotations

import ipaddress
import re
import shlex
import subprocess  # for the type of a finished run
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.adapters import tool
from toolkit.adapters.errors import TargetError
from toolkit.domain.errors import InventoryError

_INVENTORY_DIR = re.compile(r"\{\{\s*inventory_dir\s*\}\}")
_TEMPLATE = re.compile(r"\{\{|\{%")
SSH = "ssh"


@dataclass(frozen=True)
class SshTarget:
    """How to reach one inventory host over SSH."""

    host: str  # the inventory name
    address: str  # ansible_host, or the name
    user: str | None = None
    port: int | None = None
    key_file: str | None = None
    options: tuple[str, ...] = ()  # ansible_ssh_common_args then ansible_ssh_extra_args, split

    @property
    def label(self) -> str:
        """``ssh:app1`` (``ssh:app1@198.18.0.13`` when the address differs from the name)."""
        return f"ssh:{self.host}" if self.address == self.host else f"ssh:{self.host}@{self.address}"


def inventory_dir(source: str) -> Path | None:
    """Ansible's ``inventory_dir`` for an inventory read from ``source`` (one path), or None.

    >>> inventory_dir("inv/a,inv/b") is None
    True
    """
    if "," in source or not source:
        return None
    path = Path(source).resolve()
    return path if path.is_dir() else path.parent


def is_local(host: str, hostvars: Mapping[str, Any]) -> bool:
    """Whether Ansible would run ``host``'s tasks on this machine (connection local, or a loopback address).

    >>> is_local("app1", {"ansible_host": "198.18.0.13"}), is_local("a", {"ansible_connection": "local"})
    (False, True)
    >>> is_local("localhost", {}), is_local("a", {"ansible_host": "127.0.0.1"})
    (True, True)
    """
    if hostvars.get("ansible_connection") == "local":
        return True
    address = str(hostvars.get("ansible_host") or host)
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _args(host: str, key: str, value: Any, base: Path | None) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise InventoryError(key, host, f"must be a string of ssh arguments, got {type(value).__name__}")
    if _INVENTORY_DIR.search(value):
        if base is None:
            raise InventoryError(
                key, host, "uses {{ inventory_dir }} but the inventory is several paths; pass one with -i"
            )
        value = _INVENTORY_DIR.sub(lambda _m: str(base), value)
    if _TEMPLATE.search(value):
        raise InventoryError(
            key,
            host,
            "holds a template the toolkit does not resolve (only {{ inventory_dir }}); write it literally",
        )
    try:
        return tuple(shlex.split(value))
    except ValueError as exc:
        raise InventoryError(key, host, f"cannot split into ssh arguments ({exc})") from None


def ssh_target(host: str, hostvars: Mapping[str, Any], base: Path | None) -> SshTarget:
    """The SSH connection of ``host`` from its Ansible variables; ``base`` is the inventory directory.

    >>> t = ssh_target("app1", {"ansible_host": "198.18.0.13", "ansible_user": "ops", "ansible_port": "2222",
    ...     "ansible_ssh_common_args": "-F {{ inventory_dir }}/ssh_config"}, Path("/inv"))
    >>> t.address, t.user, t.port, t.options
    ('198.18.0.13', 'ops', 2222, ('-F', '/inv/ssh_config'))
    """
    port = hostvars.get("ansible_port", hostvars.get("ansible_ssh_port"))
    if port is not None:
        try:
            port = int(port)
        except (TypeError, ValueError):
            raise InventoryError("ansible_port", host, f"must be a port number, got {port!r}") from None
        if not 0 < port < 65536:
            raise InventoryError("ansible_port", host, f"must be 1-65535, got {port}")
    user = hostvars.get("ansible_user", hostvars.get("ansible_ssh_user"))
    key = hostvars.get("ansible_ssh_private_key_file", hostvars.get("ansible_private_key_file"))
    for name, value in (("ansible_user", user), ("ansible_ssh_private_key_file", key)):
        if value is not None and (not isinstance(value, str) or _TEMPLATE.search(value)):
            raise InventoryError(name, host, "must be a literal string (templates are not resolved here)")
    if isinstance(key, str) and base is not None:
        key = str(base / Path(key).expanduser()) if not Path(key).expanduser().is_absolute() else key
    options = (
        *_args(host, "ansible_ssh_common_args", hostvars.get("ansible_ssh_common_args"), base),
        *_args(host, "ansible_ssh_extra_args", hostvars.get("ansible_ssh_extra_args"), base),
    )
    address = str(hostvars.get("ansible_host") or host)
    return SshTarget(host, address, user or None, port, key or None, options)


def ssh_argv(target: SshTarget, command: Sequence[str], connect_timeout: float) -> list[str]:
    """The ssh command line that runs ``command`` (quoted for the remote shell) on ``target``.

    Batch mode: a missing key fails at once instead of prompting for a password.

    >>> target = SshTarget("app1", "198.18.0.13", "ops", 2222, "/k", ("-F", "/c"))
    >>> ssh_argv(target, ["/venv/bin/python", "-"], 5)  # doctest: +NORMALIZE_WHITESPACE
    ['ssh', '-o', 'BatchMode=yes', '-o', 'ConnectTimeout=5', '-p', '2222', '-i', '/k', '-l', 'ops',
     '-F', '/c', '--', '198.18.0.13', '/venv/bin/python -']
    """
    argv = [SSH, "-o", "BatchMode=yes", "-o", f"ConnectTimeout={max(1, round(connect_timeout))}"]
    if target.port is not None:
        argv += ["-p", str(target.port)]
    if target.key_file is not None:
        argv += ["-i", target.key_file]
    if target.user is not None:
        argv += ["-l", target.user]
    return [*argv, *target.options, "--", target.address, shlex.join(command)]


def classify(target: SshTarget, stderr: str, during: str) -> TargetError:
    """One line for ssh's own failure (exit 255) or a refused sudo, from ssh's stderr."""
    text = tool.first_error_line(stderr) or "ssh exited with status 255"
    low = stderr.lower()
    if "permission denied" in low or "too many authentication failures" in low:
        cause, hint = "authentication failed", "check ansible_user and the key (ansible_ssh_private_key_file)"
    elif "host key verification failed" in low or "remote host identification has changed" in low:
        cause, hint = "host key verification failed", "check the host's key in known_hosts"
    elif "sudo:" in low and (
        "password is required" in low or "not allowed" in low or "not in the sudoers" in low
    ):
        cause, hint = "sudo refused", f"let {target.user or 'the ssh user'} run it with sudo -n"
    elif "timed out" in low:
        cause, hint = "unreachable (connect timed out)", "is the host up and its SSH port open?"
    elif any(s in low for s in ("no route to host", "network is unreachable", "connection refused")):
        cause, hint = f"unreachable ({text.rsplit(': ', 1)[-1]})", "is the host up and its SSH port open?"
    elif "could not resolve hostname" in low:
        cause, hint = "host name does not resolve", "check ansible_host in the inventory"
    else:
        cause, hint = text, "run the same ssh by hand to see why"
    return TargetError(target.label, during, cause, hint)


def run(
    target: SshTarget, command: Sequence[str], stdin: str, timeout: float, during: str
) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on ``target`` with ``stdin``; raise :class:`TargetError` when ssh itself fails.

    The program's own failures (any exit status but 255) are returned for the caller to read.
    """
    argv = ssh_argv(target, command, min(timeout, 10.0))
    try:
        done = tool.run(argv, timeout, stdin=stdin, check=False)
    except tool.ToolError as exc:
        if exc.timed_out:
            raise TargetError(
                target.label, during, exc.cause, "is the host frozen, or the program stuck?"
            ) from None
        raise TargetError(target.label, during, exc.cause, "install the OpenSSH client") from None
    if done.returncode == 255 or (done.returncode == 1 and done.stderr.lstrip().startswith("sudo:")):
        raise classify(target, done.stderr, during)
    return done

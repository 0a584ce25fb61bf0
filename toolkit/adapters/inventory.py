"""Read an Ansible inventory through its public interface, ``ansible-inventory --list``.

Any inventory Ansible understands (YAML, INI, directories with group_vars, plugins) works, and the
toolkit sees the same groups and variables the playbooks do. Variables come back unrendered, so the
toolkit never evaluates a lookup and never sees a secret the inventory computes.

Vault: a vault-encrypted file is decrypted by ansible-inventory itself, with ``--vault-password-file`` or
``--ask-vault-pass`` passed through (:class:`Vault`) and, as for ansible-playbook, ansible.cfg's
``vault_password_file`` and ``ANSIBLE_VAULT_PASSWORD_FILE`` from the environment, which reach it
unchanged. Without ``-i``, :func:`resolve` finds the inventory the way ansible does: ``ANSIBLE_INVENTORY``,
else ``inventory =`` of the ansible.cfg ansible would read.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolkit.domain.errors import InventoryError


@dataclass(frozen=True)
class InventoryData:
    """Groups (flattened: a host of a child group is in the parent) and per-host variables."""

    source: str
    groups: Mapping[str, tuple[str, ...]]
    hostvars: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class Vault:
    """How ansible-inventory gets the vault password, as ansible-playbook's flags say it."""

    password_file: str | None = None
    ask: bool = False

    def args(self) -> list[str]:
        """The ansible-inventory arguments (none: ansible.cfg and the environment still apply)."""
        out = ["--vault-password-file", self.password_file] if self.password_file else []
        return [*out, "--ask-vault-pass"] if self.ask else out


NO_VAULT = Vault()
DEFAULT_INVENTORY = "/etc/ansible/hosts"  # ansible's own, when nothing else names one
TIMEOUT_ENV = "TOOLKIT_INVENTORY_TIMEOUT"
DEFAULT_TIMEOUT = 60.0  # seconds; an inventory of 10,000 app nodes took 35 s (issue 13)


@dataclass(frozen=True)
class InventorySource:
    """The inventory a command reads, and where that choice came from (for the line it prints)."""

    paths: tuple[str, ...]
    origin: str  # "-i", "ANSIBLE_INVENTORY", "ansible.cfg" (with its path)

    @property
    def path(self) -> str:
        """The first path (where the secrets directory is looked for)."""
        return self.paths[0]

    def describe(self) -> str:
        """``inventory/lab (from -i)``: paths below the working directory shown relative to it."""
        cwd = Path.cwd()
        shown = [p if self.origin == "-i" else _shown(Path(p), cwd) for p in self.paths]
        return f"{','.join(shown)} (from {self.origin})"


def ansible_config(environ: Mapping[str, str], cwd: Path, home: Path) -> Path | None:
    """The ansible.cfg ansible would read: ANSIBLE_CONFIG, ./ansible.cfg, ~/.ansible.cfg, /etc/ansible.

    As ansible does, ./ansible.cfg is ignored in a world-writable directory.
    """
    candidates: list[Path] = []
    if environ.get("ANSIBLE_CONFIG"):
        given = Path(environ["ANSIBLE_CONFIG"]).expanduser()
        candidates.append(given / "ansible.cfg" if given.is_dir() else given)
    try:
        writable = bool(cwd.stat().st_mode & 0o002)
    except OSError:
        writable = True
    if not writable:
        candidates.append(cwd / "ansible.cfg")
    candidates += [home / ".ansible.cfg", Path("/etc/ansible/ansible.cfg")]
    return next((c for c in candidates if c.is_file()), None)


def resolve(
    explicit: str | None,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
) -> InventorySource | None:
    """The inventory ansible would read: ``-i``, else ANSIBLE_INVENTORY, else ``inventory =`` of ansible.cfg,
    else ansible's own default /etc/ansible/hosts where it exists; None when there is none.

    Relative paths of ansible.cfg are relative to its directory, as ansible reads them.
    """
    if explicit:
        return InventorySource((explicit,), "-i")
    env = os.environ if environ is None else environ
    here = Path.cwd() if cwd is None else cwd
    if env.get("ANSIBLE_INVENTORY", "").strip():
        return InventorySource(_split(env["ANSIBLE_INVENTORY"], here), "ANSIBLE_INVENTORY")
    cfg = ansible_config(env, here, Path.home() if home is None else home)
    if cfg is not None:
        parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
        try:
            parser.read(cfg, encoding="utf-8")
        except (configparser.Error, OSError, UnicodeDecodeError) as exc:
            why = " ".join(str(exc).split())
            raise InventoryError(str(cfg), None, f"unreadable ({why}); fix it or pass -i") from None
        value = parser.get("defaults", "inventory", fallback="")
        if value.strip():
            return InventorySource(_split(value, cfg.parent), f"ansible.cfg {_shown(cfg, Path.cwd())}")
    if Path(DEFAULT_INVENTORY).exists():
        return InventorySource((DEFAULT_INVENTORY,), "ansible's default")
    return None


def _split(value: str, base: Path) -> tuple[str, ...]:
    """Each path of a comma-separated list, absolute (relative ones against ``base``)."""
    parts = [Path(p.strip()).expanduser() for p in value.split(",") if p.strip()]
    return tuple(os.path.normpath(p if p.is_absolute() else base.absolute() / p) for p in parts)


def _shown(path: Path, cwd: Path) -> str:
    """``path`` relative to ``cwd`` where it is below it (shorter to read), else absolute."""
    absolute = Path(os.path.normpath(path.absolute()))
    try:
        return str(absolute.relative_to(Path(os.path.normpath(cwd.absolute()))))
    except ValueError:
        return str(absolute)


def _ansible_inventory() -> str:
    """The ansible-inventory beside this Python (a virtualenv), else the one on PATH."""
    beside = Path(sys.executable).with_name("ansible-inventory")
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-inventory")
    if not found:
        raise InventoryError("inventory", None, "ansible-inventory not found; install ansible-core")
    return found


def timeout_from(environ: Mapping[str, str]) -> float:
    """Seconds ansible-inventory may take: ``TOOLKIT_INVENTORY_TIMEOUT``, else 60.

    >>> timeout_from({}), timeout_from({"TOOLKIT_INVENTORY_TIMEOUT": "120"})
    (60.0, 120.0)
    """
    raw = environ.get(TIMEOUT_ENV, "").strip()
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise InventoryError(
            TIMEOUT_ENV, None, f"{raw!r} is not a number of seconds above 0; set it to e.g. 120, or unset it"
        )
    return value


def load(path: str | Sequence[str], timeout: float | None = None, vault: Vault = NO_VAULT) -> InventoryData:
    """Return the groups and host variables of the inventory at ``path`` (or at each of several paths).

    ``timeout`` (seconds) defaults to :func:`timeout_from` the environment; past it the read fails with
    an :class:`InventoryError` (exit 65: the inventory could not be read). With ``vault.ask``
    ansible-inventory prompts for the password on the terminal (stdin is inherited, its prompt goes to
    the terminal, not to the captured output) and the timeout does not apply.
    """
    return start(path, timeout, vault).wait()


def start(path: str | Sequence[str], timeout: float | None = None, vault: Vault = NO_VAULT) -> PendingRead:
    """Start ``ansible-inventory --list`` and return at once: :meth:`PendingRead.wait` gives what
    :func:`load` returns. A command that must import more before it needs the inventory (toolkit plan)
    does that while ansible-inventory runs; the timeout counts from here."""
    paths = [path] if isinstance(path, str) else list(path)
    for one in paths:
        if not Path(one).exists():
            raise InventoryError(
                one, None, "no such file or directory; pass an inventory file or directory with -i"
            )
    if vault.password_file and not Path(vault.password_file).is_file():
        raise InventoryError(
            "--vault-password-file",
            None,
            f"{vault.password_file}: no such file; pass the vault password file",
        )
    if timeout is None:
        timeout = timeout_from(os.environ)
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_NOCOLOR": "1"}
    argv = [_ansible_inventory(), *(a for p in paths for a in ("-i", p)), *vault.args(), "--list"]
    proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    return PendingRead(",".join(paths), proc, None if vault.ask else timeout, vault, time.monotonic())


@dataclass
class PendingRead:
    """An ``ansible-inventory --list`` under way (:func:`start`)."""

    path: str
    proc: subprocess.Popen[str]
    timeout: float | None
    vault: Vault
    started: float

    def wait(self) -> InventoryData:
        """The inventory, once ansible-inventory has answered; an :class:`InventoryError` if it could not."""
        left = None if self.timeout is None else max(0.0, self.timeout - (time.monotonic() - self.started))
        try:
            stdout, stderr = self.proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            self.cancel()
            raise InventoryError(
                "inventory",
                None,
                f"{self.path}: ansible-inventory took over {self.timeout:g} s; "
                f"set {TIMEOUT_ENV} to more seconds for a large or slow inventory",
            ) from None
        if self.proc.returncode != 0:
            cause = _first_error(stderr)
            hint = _vault_hint(cause, self.vault)
            cause = cause.rstrip(".") if hint else cause
            raise InventoryError(self.path, None, f"ansible-inventory failed: {cause}{hint}")
        try:
            data = json.loads(stdout)
        except json.JSONDecodeError as exc:
            raise InventoryError(
                "inventory", None, f"{self.path}: unreadable output from ansible-inventory: {exc}"
            ) from None
        return parse_list_output(self.path, data)

    def cancel(self) -> None:
        """Stop the read when its result is no longer wanted (an error on the way): kill, reap."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()


def parse_list_output(source: str, data: Mapping[str, Any]) -> InventoryData:
    """Flatten the JSON of ``ansible-inventory --list`` into groups and host variables."""
    hostvars = data.get("_meta", {}).get("hostvars", {})

    def members(group: str, seen: frozenset[str]) -> list[str]:
        entry = data.get(group, {})
        hosts = list(entry.get("hosts", []))
        for child in entry.get("children", []):
            if child not in seen:
                hosts += [h for h in members(child, seen | {child}) if h not in hosts]
        return hosts

    names = [k for k in data if k != "_meta"]
    groups = {g: tuple(dict.fromkeys(members(g, frozenset({g})))) for g in names}
    return InventoryData(source, groups, {h: dict(v) for h, v in hostvars.items()})


def _vault_hint(cause: str, vault: Vault) -> str:
    """What to do when the inventory holds vault data ansible-inventory could not decrypt."""
    lowered = cause.lower()
    if "decryption failed" in lowered:
        return "; the vault password is wrong: check --vault-password-file or the password typed"
    if "vault" in lowered and ("secret" in lowered or "password" in lowered) and not vault.password_file:
        return (
            "; the inventory holds vault data: pass --vault-password-file FILE or --ask-vault-pass "
            "(or set vault_password_file in ansible.cfg or ANSIBLE_VAULT_PASSWORD_FILE)"
        )
    return ""


def _first_error(stderr: str) -> str:
    """The cause ansible-inventory gives, in one line, with the file position when it names one."""
    from toolkit.adapters import tool  # noqa: PLC0415 - only on a failure: plan's start-up stays small

    cause = tool.first_error_line(stderr) or "no output"
    lines = [ln.strip() for ln in stderr.splitlines()]
    origin = next((ln.removeprefix("Origin:").strip() for ln in lines if ln.startswith("Origin:")), "")
    return f"{cause} (at {origin})" if origin else cause

"""Read an Ansible inventory through its public interface, ``ansible-inventory --list``.

Any inventory Ansible understands (YAML, INI, directories with group_vars, plugins) works, and the
toolkit sees the same groups and variables the playbooks do. Variables come back unrendered, so the
toolkit never evaluates a lookup and never sees a secret the inventory computes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
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


def _ansible_inventory() -> str:
    """The ansible-inventory beside this Python (a virtualenv), else the one on PATH."""
    beside = Path(sys.executable).with_name("ansible-inventory")
    if beside.exists():
        return str(beside)
    found = shutil.which("ansible-inventory")
    if not found:
        raise InventoryError("inventory", None, "ansible-inventory not found; install ansible-core")
    return found


def load(path: str, timeout: float = 60.0) -> InventoryData:
    """Return the groups and host variables of the inventory at ``path``."""
    if not Path(path).exists():
        raise InventoryError(
            path, None, "no such file or directory; pass an inventory file or directory with -i"
        )
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True", "ANSIBLE_NOCOLOR": "1"}
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            [_ansible_inventory(), "-i", path, "--list"],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InventoryError(
            "inventory", None, f"{path}: ansible-inventory took over {timeout:.0f} s"
        ) from None
    if proc.returncode != 0:
        raise InventoryError(path, None, f"ansible-inventory failed: {_first_error(proc.stderr)}")
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise InventoryError(
            "inventory", None, f"{path}: unreadable output from ansible-inventory: {exc}"
        ) from None
    return parse_list_output(path, data)


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


def _first_error(stderr: str) -> str:
    """The cause ansible-inventory gives, in one line, with the file position when it names one."""
    lines = [re.sub(r"^\[(WARNING|ERROR)\]:\s*", "", ln.strip()) for ln in stderr.splitlines() if ln.strip()]
    causes = [ln for ln in lines if "failed" in ln.lower() or "error" in ln.lower()]
    cause = causes[0] if causes else (lines[-1] if lines else "no output")
    origin = next((ln.removeprefix("Origin:").strip() for ln in lines if ln.startswith("Origin:")), "")
    return f"{cause} (at {origin})" if origin else cause

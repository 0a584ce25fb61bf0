"""Write one variable into a host_vars/group_vars YAML file in place, atomically, keeping the rest.

The text edit is :func:`toolkit.domain.vars_file.set_top_level_key` (lines, so comments stay); here
the file is read, checked to be a YAML mapping (not vault-encrypted), edited, parsed again and compared
with the original plus the one key (anything else changed: refused), and written with a temporary file
and a rename (:func:`toolkit.adapters.files.write_atomic`) with the file's mode kept. Every refusal is
an :class:`~toolkit.domain.errors.InputDataError` (exit 65) naming the file and what to do.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # PyYAML comes with ansible-core; its stubs are not installed

from toolkit.adapters.files import write_atomic
from toolkit.domain.errors import InputDataError
from toolkit.domain.vars_file import is_vault_encrypted, set_top_level_key

NEW_FILE_MODE = 0o644


class _Loader(yaml.SafeLoader):  # type: ignore[misc]
    """SafeLoader that reads Ansible's tags (``!vault``, ``!unsafe``) as their plain values."""


def _untag(loader: _Loader, _suffix: str, node: Any) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)


_Loader.add_multi_constructor("!", _untag)


@dataclass(frozen=True)
class Written:
    """What :func:`set_variable` did: the file, whether it existed, the value it replaced."""

    path: Path
    created: bool
    previous: object


def _mapping(text: str, where: str) -> dict[str, Any]:
    try:
        doc = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        at = f" (line {line + 1})" if line is not None else ""
        raise InputDataError(f"{where}: not valid YAML{at}: fix the file or paste the line by hand") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise InputDataError(
            f"{where}: not a YAML mapping (a {type(doc).__name__}): give a host_vars or group_vars file "
            "of variables, or paste the line by hand"
        )
    return doc


def set_variable(path: Path, key: str, value: int, comment: str = "") -> Written:
    """Set ``key: value`` in the YAML mapping at ``path`` (created if absent); refuse with exit 65."""
    where = str(path)
    if not path.parent.is_dir():
        raise InputDataError(f"{where}: no directory {path.parent}: create it, or give an existing vars file")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise InputDataError(f"{where}: not a regular file (a link or a directory): give the file itself")
    created = not path.exists()
    try:
        text = "" if created else path.read_text(encoding="utf-8")
        mode = NEW_FILE_MODE if created else stat.S_IMODE(os.stat(path).st_mode)
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"{where}: cannot read it ({exc}): fix its permissions or encoding") from None
    if is_vault_encrypted(text):
        raise InputDataError(
            f"{where}: vault-encrypted, the toolkit does not rewrite it: decrypt it with ansible-vault edit, "
            "or put the line in a plain vars file"
        )
    before = _mapping(text, where)
    edited = set_top_level_key(text, key, value, comment)
    try:
        after: dict[str, Any] | None = _mapping(edited, where)
    except InputDataError:
        after = None
    if after != {**before, key: value}:
        raise InputDataError(
            f"{where}: the line edit would change more than {key} (flow style, a repeated key or several "
            "documents?): paste the line by hand"
        )
    try:
        write_atomic(path, edited, mode)
    except (OSError, ValueError) as exc:
        raise InputDataError(f"{where}: cannot write it ({exc}): check the directory's permissions") from None
    return Written(path, created, before.get(key))

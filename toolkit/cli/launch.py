"""The console script's entry: the inventory read of ``toolkit plan|doctor -i X`` starts before typer loads.

``ansible-inventory --list`` is most of what ``toolkit plan`` costs (bench/plan_speed.py, goal: the
whole command within 1.2 x that read). Started here, with nothing imported but the inventory adapter,
it runs while typer (about 60 ms of imports), the parse of the command line and the command's own
modules load. Only a command line read here with certainty starts it: ``plan`` or ``doctor`` first (a
``--debug`` anywhere before ``--`` aside), an ``-i``/``--inventory`` value, no ``--ask-vault-pass``
(its prompt belongs to the command) and no ``--help``. Anything else runs exactly as before.

:func:`toolkit.cli.context.load_context` takes the read over (:func:`claim`) when it is of the same
paths with the same vault flags; otherwise, and at exit when no command claimed it (a usage error),
the read is killed and reaped. Errors are the command's to report: a read that cannot start here
(no such file, a bad TOOLKIT_INVENTORY_TIMEOUT) is simply not started.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from toolkit.adapters.inventory import PendingRead, Vault

COMMANDS = frozenset({"plan", "doctor"})
_VALUED = {"-i": "inventory", "--inventory": "inventory", "--vault-password-file": "vault"}
_started: list[PendingRead] = []  # at most one: the read started by prestart, until claimed


def peek(args: Sequence[str]) -> tuple[str, str | None] | None:
    """(inventory, vault password file) that ``args`` will give the command, when that is certain.

    >>> peek(["plan", "-i", "inventory/lab", "--format", "json"])
    ('inventory/lab', None)
    >>> peek(["--debug", "doctor", "--inventory=inv", "--vault-password-file", "pw"])
    ('inv', 'pw')
    >>> peek(["plan", "-iinv"]), peek(["plan"]), peek(["plan", "-i", "inv", "--help"])
    (('inv', None), None, None)
    >>> peek(["plan", "-i", "inv", "--ask-vault-pass"]), peek(["runbook", "-i", "inv"])
    (None, None)
    """
    words = [a for a in (args[: args.index("--")] if "--" in args else args) if a != "--debug"]
    if not words or words[0] not in COMMANDS:
        return None
    found: dict[str, str] = {}
    rest = iter(words[1:])
    for word in rest:
        if word in ("--help", "--ask-vault-pass"):
            return None
        name, eq, value = word.partition("=")
        if name in _VALUED and name.startswith("--") and eq:
            found[_VALUED[name]] = value
        elif word in _VALUED:
            found[_VALUED[word]] = next(rest, "")
        elif word.startswith("-i") and not word.startswith("--") and len(word) > 2:
            found["inventory"] = word[2:]
    inventory = found.get("inventory", "")
    if not inventory.strip() or inventory.startswith("-") or found.get("vault", "x").startswith("-"):
        return None
    return inventory, found.get("vault") or None


def prestart(args: Sequence[str]) -> None:
    """Start the inventory read ``args`` asks for, when :func:`peek` is certain of it."""
    seen = peek(args)
    if seen is None:
        return
    from toolkit.adapters import inventory  # noqa: PLC0415 - only for a command that reads one
    from toolkit.domain.errors import ToolkitError  # noqa: PLC0415

    try:
        _started.append(inventory.start((seen[0],), vault=inventory.Vault(seen[1])))
    except (ToolkitError, OSError):
        return  # the command reads it again and reports the error itself


def claim(paths: Sequence[str], vault: Vault) -> PendingRead | None:
    """The read started for these ``paths`` and ``vault``, taken over; a read of anything else is killed."""
    if not _started:
        return None
    pending = _started.pop()
    if pending.path == ",".join(paths) and pending.vault == vault:
        return pending
    pending.cancel()
    return None


def release() -> None:
    """Kill and reap a read that no command claimed."""
    while _started:
        _started.pop().cancel()


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script: start the read, then run the toolkit (toolkit.cli.app)."""
    args = sys.argv[1:] if argv is None else argv
    prestart(args)
    try:
        from toolkit.cli.app import main as run  # noqa: PLC0415 - imported while the read runs

        run(args)
    finally:
        release()

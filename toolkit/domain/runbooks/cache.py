"""Plans for the cache runbooks: retire one key namespace, never the whole database."""

from __future__ import annotations

from toolkit.domain.runbooks.base import Action, RunbookError, RunbookPlan

GLOB = set("*?[]\\")


def django_prefix(key_prefix: str, version: int) -> str:
    """The Redis key prefix of one Django cache namespace: Django stores ``prefix:version:key``.

    >>> django_prefix("shop", 3)
    'shop:3:'
    """
    return f"{key_prefix}:{version}:"


def check_prefix(prefix: str) -> str:
    """Refuse a prefix that would match everything or glob beyond itself.

    >>> check_prefix("shop:3:")
    'shop:3:'
    >>> check_prefix("*")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookError: --prefix '*' would match every key; ...
    """
    if not prefix.strip() or set(prefix) & GLOB:
        raise RunbookError(
            f"--prefix {prefix!r} would match every key; name one namespace, such as 'shop:3:'"
        )
    return prefix


def plan_flush_namespace(target: str, prefix: str, matching: int, batch: int = 500) -> RunbookPlan:
    """Delete the keys under ``prefix`` with UNLINK in batches (never FLUSHALL, FLUSHDB or KEYS)."""
    check_prefix(prefix)
    notes = (
        f"{matching} key(s) under {prefix!r} (counted with SCAN)",
        "keys outside the prefix are never touched",
    )
    if matching == 0:
        return RunbookPlan("cache-flush-namespace", (), notes)
    action = Action(
        target,
        "unlink_prefix",
        {"prefix": prefix, "keys": matching, "batch": batch},
        "retire one namespace without blocking Redis (UNLINK frees memory in the background)",
    )
    return RunbookPlan("cache-flush-namespace", (action,), notes)

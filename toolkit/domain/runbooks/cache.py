"""Plans for the cache runbooks: retire one key namespace, never the whole database.

A namespace ends with Django's separator (``prefix:version:``), and the runbook deletes only keys under
``namespace`` *with* the separator: ``c`` would otherwise also match ``celery-task-meta-*``. A prefix
given without the separator is refused when keys outside ``prefix:`` begin with it (another namespace),
and the prefix must lie inside the app's key prefix from the inventory (``toolkit_redis_key_prefix``).
"""

from __future__ import annotations

from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import Action, RunbookPlan, RunbookUsageError

GLOB = set("*?[]\\")
SEPARATOR = ":"  # Django's default KEY_FUNCTION joins KEY_PREFIX, VERSION and the key with ':'


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
    toolkit.domain.runbooks.base.RunbookUsageError: --prefix '*' would match every key; ...
    """
    if not prefix.strip() or set(prefix) & GLOB:
        raise RunbookUsageError(
            f"--prefix {prefix!r} would match every key; name one namespace, such as 'shop:3:'"
        )
    return prefix


def namespace(prefix: str) -> str:
    """The namespace a prefix names: the prefix ending with the separator.

    >>> namespace("shop:3"), namespace("shop:3:")
    ('shop:3:', 'shop:3:')
    """
    return prefix if prefix.endswith(SEPARATOR) else prefix + SEPARATOR


def check_inside(prefix: str, app_prefix: str) -> str:
    """Refuse a prefix outside the app's key prefix (when the inventory names one).

    >>> check_inside("lab:old:", "lab:")
    'lab:old:'
    >>> check_inside("celery", "lab:")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: --prefix 'celery' is outside the app's key prefix ...
    """
    if app_prefix and not namespace(prefix).startswith(app_prefix):
        raise RunbookUsageError(
            f"--prefix {prefix!r} is outside the app's key prefix {app_prefix!r} (toolkit_redis_key_prefix); "
            "this runbook deletes only the app's keys"
        )
    return prefix


def plan_flush_namespace(
    target: str, prefix: str, in_namespace: int, beginning_with: int, batch: int = 500
) -> RunbookPlan:
    """Delete the keys of ``namespace(prefix)`` with UNLINK in batches (never FLUSHALL, FLUSHDB or KEYS).

    ``in_namespace`` counts the keys under ``namespace(prefix)``, ``beginning_with`` those under the bare
    ``prefix``; more of the latter means another namespace begins with the prefix: refused (exit 2).

    >>> plan_flush_namespace("redis", "c", 3, 5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.RefusedError: --prefix 'c' also matches 2 key(s) outside the namespace 'c:' ...
    >>> plan_flush_namespace("redis", "c", 3, 3).actions[0].args["prefix"]
    'c:'
    """
    check_prefix(prefix)
    space = namespace(prefix)
    if space != prefix and beginning_with > in_namespace:
        raise RefusedError(
            f"--prefix {prefix!r} also matches {beginning_with - in_namespace} key(s) outside the namespace "
            f"{space!r} (another namespace begins with {prefix!r}); nothing was done: name the namespace "
            f"with its separator, such as {space!r}"
        )
    notes = (
        f"{in_namespace} key(s) under {space!r} (counted with SCAN)",
        f"only keys beginning with {space!r} (with the separator) are deleted; no other key is touched",
    )
    if in_namespace == 0:
        return RunbookPlan("cache-flush-namespace", (), notes)
    action = Action(
        target,
        "unlink_prefix",
        {"prefix": space, "keys": in_namespace, "batch": batch},
        "retire one namespace without blocking Redis (UNLINK frees memory in the background)",
    )
    return RunbookPlan("cache-flush-namespace", (action,), notes)

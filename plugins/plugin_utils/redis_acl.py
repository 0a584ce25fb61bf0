# Generated from toolkit/domain/redis_acl.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/redis_acl.py and run `python scripts/generate_plugin_utils.py`.
"""Redis ACL rules checked token by token against the ACL grammar (Redis 7.0, ``ACL SETUSER``).

The rules the inventory gives are written after the role's own on the user's line of the ACL file, so
a token may only narrow or widen that user: never reset it, never add another user (a newline is
refused before any token is read), never remove its password.
"""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.validate import DEFERRED, Invalid, text

# ACL CAT on Redis 7.0.15 (measured).
CATEGORIES = frozenset(
    [
        "keyspace",
        "read",
        "write",
        "set",
        "sortedset",
        "list",
        "hash",
        "string",
        "bitmap",
        "hyperloglog",
        "geo",
        "stream",
        "pubsub",
        "admin",
        "fast",
        "slow",
        "blocking",
        "dangerous",
        "connection",
        "transaction",
        "scripting",
        "all",
    ]
)
# ACL CAT dangerous on Redis 7.0.15 (measured; it includes every @admin command): commands that read
# or change the server, its users or every key. The app user may not be granted any of them.
DANGEROUS = frozenset(
    [
        "acl|deluser",
        "acl|dryrun",
        "acl|getuser",
        "acl|list",
        "acl|load",
        "acl|log",
        "acl|save",
        "acl|setuser",
        "acl|users",
        "bgrewriteaof",
        "bgsave",
        "client|kill",
        "client|list",
        "client|no-evict",
        "client|pause",
        "client|unblock",
        "client|unpause",
        "cluster",
        "config",
        "debug",
        "failover",
        "flushall",
        "flushdb",
        "info",
        "keys",
        "lastsave",
        "latency",
        "migrate",
        "module",
        "monitor",
        "pfdebug",
        "pfselftest",
        "psync",
        "replconf",
        "replicaof",
        "restore",
        "restore-asking",
        "role",
        "save",
        "shutdown",
        "slaveof",
        "slowlog",
        "sort",
        "sort_ro",
        "swapdb",
        "sync",
    ]
)
_PATTERN = r"[!-~]+"  # printable ASCII, no space
_COMMAND = r"[a-z][a-z0-9_-]*(\|[a-z][a-z0-9_-]*)?"
_TOKENS = {
    "switch": re.compile(r"on|off"),
    "password": re.compile(r"[<>][!-~]+"),
    "hash": re.compile(r"[#!][0-9a-f]{64}"),
    "nopass": re.compile(r"nopass"),
    "keys": re.compile(rf"~{_PATTERN}|%(R|W|RW)~{_PATTERN}|allkeys|resetkeys"),
    "channels": re.compile(rf"&{_PATTERN}|allchannels|resetchannels"),
    "category": re.compile(r"[+-]@[a-z]+"),
    "command": re.compile(rf"[+-]{_COMMAND}|allcommands|nocommands"),
}


def acl_kind(token: str, *, allow_nopass: bool = False) -> str:
    """The grammar class of one ACL rule token; Invalid for anything else.

    ``reset``, ``resetpass``, selectors and unknown words are refused: they would reset the user,
    drop its password or are outside what the role writes.
    """
    lowered = token.lower()
    for kind, regex in _TOKENS.items():
        if regex.fullmatch(token) or regex.fullmatch(lowered):
            if kind == "nopass" and not allow_nopass:
                raise Invalid("may not contain nopass (a user without a password)", token)
            if kind == "category" and lowered[2:] not in CATEGORIES:
                raise Invalid(
                    f"names an unknown category; Redis 7.0 has {', '.join(sorted(CATEGORIES))}", token
                )
            return kind
    raise Invalid(
        "has a token outside the ACL grammar (on/off, >pass, <pass, #sha256, ~keys, %R~ %W~ %RW~, &channel, "
        "allkeys, allchannels, resetkeys, resetchannels, +@cat, -@cat, +cmd, -cmd, +cmd|sub, "
        "allcommands, nocommands; never reset or resetpass)",
        token,
    )


def acl_rules(value: Any, *, allow_nopass: bool = False) -> list[tuple[str, str]]:
    """Every token of ``value`` with its grammar class (space separated, one line)."""
    tokens = text(value).split(" ")
    if any(not t for t in tokens):
        raise Invalid("must be tokens separated by single spaces", value)
    return [(acl_kind(t, allow_nopass=allow_nopass), t) for t in tokens]


def _grants_dangerous(token: str) -> bool:
    lowered = token.lower()
    if lowered in ("allcommands", "+@all", "+@admin", "+@dangerous"):
        return True
    if not lowered.startswith("+") or lowered.startswith("+@"):
        return False
    command = lowered[1:]
    return (
        command in DANGEROUS
        or command.split("|")[0] in DANGEROUS
        or any(d.startswith(command + "|") for d in DANGEROUS)
    )


def app_command_rules(value: Any) -> None:
    """The app user's command rules: command and category tokens only, none granting a dangerous one.

    Keys, channels, passwords and on/off have their own variables (redis_app_key_prefix,
    redis_app_channels, redis_app_password); here they would widen the user past its prefix.
    """
    if value is DEFERRED:
        return
    for kind, token in acl_rules(value):
        if kind not in ("category", "command"):
            raise Invalid(
                "may hold command rules only (+@cat, -@cat, +cmd, -cmd, +cmd|sub); keys, channels and "
                "passwords have their own variables",
                token,
            )
        if _grants_dangerous(token):
            raise Invalid(
                "may not grant @all, @admin, @dangerous or one of their commands (ACL CAT dangerous): "
                "the app user must not reconfigure Redis, its users or every key",
                token,
            )

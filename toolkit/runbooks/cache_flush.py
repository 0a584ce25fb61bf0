"""Runbook cache-flush-namespace: delete one cache namespace with SCAN and UNLINK in batches.

Never FLUSHALL, FLUSHDB or KEYS. The prefix is --prefix, or Django's KEY_PREFIX and VERSION
(``prefix:version:``); it must lie inside the app's key prefix, and only keys under it *with* the
separator are deleted (toolkit.domain.runbooks.cache). --bump-version retires a namespace without
deleting anything: it prints the settings change (VERSION + 1) and leaves the old keys to expire.
"""

from __future__ import annotations

from toolkit.adapters import redis_state
from toolkit.domain.runbooks.base import Action, RunbookInfo, RunbookPlan, RunbookUsageError
from toolkit.domain.runbooks.cache import (
    check_inside,
    check_prefix,
    django_prefix,
    namespace,
    plan_flush_namespace,
)
from toolkit.runbooks.base import RunContext, RunOptions

INFO = RunbookInfo(
    "cache-flush-namespace",
    "Delete one cache namespace (SCAN + UNLINK in batches), or retire it by bumping VERSION",
    fixes=("redis.keys_without_ttl", "redis.evictions"),
    params=("--prefix", "--key-prefix", "--version", "--bump-version"),
)


def _prefix(opts: RunOptions) -> str:
    if opts.prefix is not None:
        return check_prefix(opts.prefix)
    if opts.key_prefix is not None and opts.version is not None:
        return check_prefix(django_prefix(opts.key_prefix, opts.version))
    raise RunbookUsageError(
        "cache-flush-namespace needs --prefix, or --key-prefix with --version (Django's settings)"
    )


def _client(ctx: RunContext) -> tuple[redis_state.RedisTarget, str, str]:
    """The one Redis selected, its label, and the app's key prefix there."""
    endpoints = ctx.selected("redis")
    if len(endpoints) != 1:
        names = ", ".join(e.name for e in ctx.endpoints if e.kind == "redis") or "none"
        raise RunbookUsageError(f"pick one Redis with --target (the inventory has: {names})")
    ep = endpoints[0]
    target = redis_state.RedisTarget(ep.name, ep.address, ep.port, ep.user, ctx.secrets.password("redis"))
    return target, target.label, ep.key_prefix


def plan(ctx: RunContext, opts: RunOptions) -> RunbookPlan:
    """Count the keys under the prefix (SCAN) and plan their deletion."""
    if opts.bump_version:
        if opts.key_prefix is None or opts.version is None:
            raise RunbookUsageError(
                "--bump-version needs --key-prefix and --version (the current Django settings)"
            )
        notes = (
            f"set CACHES['default']['VERSION'] = {opts.version + 1} on every app node and deploy; keys under "
            f"{django_prefix(opts.key_prefix, opts.version)!r} are no longer read and expire by their TTL",
            "nothing is deleted, so nothing here acts: this is a settings change",
        )
        return RunbookPlan(INFO.name, (), notes)
    prefix = _prefix(opts)
    target, label, app_prefix = _client(ctx)
    check_inside(prefix, app_prefix)
    in_namespace = redis_state.count_prefix(target, namespace(prefix), ctx.timeout)
    beginning_with = (
        in_namespace if namespace(prefix) == prefix else redis_state.count_prefix(target, prefix, ctx.timeout)
    )
    return plan_flush_namespace(label, prefix, in_namespace, beginning_with)


def act(ctx: RunContext, action: Action, opts: RunOptions) -> str:
    """UNLINK every key under the prefix, in batches."""
    target, _, _ = _client(ctx)
    removed = redis_state.unlink_prefix(
        target, str(action.args["prefix"]), int(action.args["batch"]), ctx.timeout
    )
    return f"unlinked {removed} key(s)"


def verify(ctx: RunContext, plan: RunbookPlan, opts: RunOptions) -> tuple[bool, str]:
    """No key is left under the prefix."""
    if not plan.actions:
        return True, "nothing to verify"
    target, _, _ = _client(ctx)
    prefix = str(plan.actions[0].args["prefix"])
    left = redis_state.count_prefix(target, prefix, ctx.timeout)
    return (left == 0, f"{left} key(s) left under {prefix!r}")

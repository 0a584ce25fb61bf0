"""Shared by the Redis client runbooks: the one Redis --target names, and the ACL users to log in as.

The ops user is doctor's (``toolkit_redis_user``, password ``TOOLKIT_REDIS_PASSWORD`` or the file
``redis_ops_password``). CONFIG SET needs the redis role's admin user (``redis_admin_user``, default
``deploy``; password ``TOOLKIT_REDIS_ADMIN_PASSWORD`` or the file ``redis_admin_password``). The app's
ACL user is the role's ``redis_app_user`` (default ``app``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from toolkit.adapters.redis_clients import Login
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.targets import Endpoint
from toolkit.runbooks.base import RunContext

ROLE_DEFAULTS = {"redis_admin_user": "deploy", "redis_app_user": "app"}  # roles/redis/defaults/main.yml


def one_redis(ctx: RunContext, runbook: str) -> tuple[Endpoint, Mapping[str, Any]]:
    """The one Redis host --target selects, and its inventory variables."""
    found = ctx.selected("redis")
    if len(found) != 1:
        names = ", ".join(e.name for e in ctx.endpoints if e.kind == "redis") or "none"
        raise RunbookUsageError(
            f"{runbook} acts on one Redis: pick it with --target (the inventory has: {names})"
        )
    return found[0], ctx.data.hostvars.get(found[0].name, {})


def role_var(hostvars: Mapping[str, Any], name: str) -> str:
    """A redis role variable of the host, or the role's default."""
    return str(hostvars.get(name) or ROLE_DEFAULTS[name])


def ops_login(ctx: RunContext, ep: Endpoint) -> Login:
    """Doctor's ops user on ``ep``."""
    return Login(ep.address, ep.port, ep.user, ctx.secrets.password("redis"))


def admin_login(ctx: RunContext, ep: Endpoint, hostvars: Mapping[str, Any]) -> Login:
    """The redis role's admin user on ``ep`` (the one user that may CONFIG SET)."""
    password = ctx.secrets.password("redis_admin")
    if password is None:
        raise RunbookUsageError(
            f"CONFIG SET on {ep.name} needs the redis role's admin user: set TOOLKIT_REDIS_ADMIN_PASSWORD "
            "or put the file redis_admin_password in the secrets directory (--secrets)"
        )
    return Login(ep.address, ep.port, role_var(hostvars, "redis_admin_user"), password)

"""Redis for the client runbooks: CONFIG GET/SET maxclients, CLIENT LIST and CLIENT KILL.

Who may do what comes from the redis role's ACL file: the ops user (``toolkit``) reads (CONFIG GET,
CLIENT LIST) and may CLIENT KILL; only the role's admin user (``deploy``) may CONFIG SET. Each call
opens its own connection and closes it, and fails as a TargetError naming the command.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.redis_clients import RedisClient

_NO_RETRY = Retry(NoBackoff(), 0)


@dataclass(frozen=True)
class Login:
    """One Redis and the ACL user to log in as."""

    address: str
    port: int
    user: str | None
    password: str | None = field(repr=False)

    @property
    def label(self) -> str:
        """How messages name the target."""
        return f"redis@{self.address}:{self.port}"


@contextmanager
def _client(login: Login, timeout: float, during: str) -> Iterator[redis.Redis]:
    client = redis.Redis(
        host=login.address,
        port=login.port,
        username=login.user,
        password=login.password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        decode_responses=True,
        retry=_NO_RETRY,
    )
    try:
        yield client
    except redis.exceptions.AuthenticationError as exc:
        raise TargetError(
            login.label, during, f"authentication of {login.user} failed", "check the user's password"
        ) from exc
    except redis.exceptions.NoPermissionError as exc:
        raise TargetError(
            login.label,
            during,
            f"{login.user} may not run it (NOPERM)",
            "deploy the redis role's ACL file (docs/roles/redis.md)",
        ) from exc
    except redis.exceptions.ResponseError as exc:
        raise TargetError(login.label, during, f"refused: {exc}", "nothing was changed by it") from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise TargetError.from_exception(login.label, during, exc, timeout) from None
    finally:
        client.close()


def _call(login: Login, timeout: float, during: str, do: Callable[[redis.Redis], Any]) -> Any:
    with _client(login, timeout, during) as client:
        return do(client)


def maxclients(login: Login, timeout: float) -> int:
    """The live maxclients (CONFIG GET)."""
    got = _call(login, timeout, "CONFIG GET maxclients", lambda c: c.config_get("maxclients"))
    return int(got["maxclients"])


def set_maxclients(login: Login, value: int, timeout: float) -> None:
    """CONFIG SET maxclients (Redis refuses a value its open-file limit cannot hold)."""
    _call(login, timeout, f"CONFIG SET maxclients {value}", lambda c: c.config_set("maxclients", value))


def clients(login: Login, timeout: float) -> tuple[int, list[RedisClient]]:
    """CLIENT LIST: every connection, and the id of this one (-1 when it cannot be told apart)."""
    rows: list[dict[str, str]] = _call(login, timeout, "CLIENT LIST", lambda c: c.client_list())
    parsed = [RedisClient.from_fields(r) for r in rows]
    # Our connection is the one running CLIENT LIST as our user (the ops user lacks CLIENT ID).
    own = [
        c.id
        for c, r in zip(parsed, rows, strict=True)
        if r.get("cmd") == "client|list" and c.user == login.user
    ]
    return (own[0] if len(own) == 1 else -1), parsed


def client(login: Login, client_id: int, timeout: float) -> RedisClient | None:
    """CLIENT LIST ID: the connection with this id now, or None."""
    rows: list[dict[str, str]] = _call(
        login, timeout, f"CLIENT LIST ID {client_id}", lambda c: c.client_list(client_id=[client_id])
    )
    return RedisClient.from_fields(rows[0]) if rows else None


def kill(login: Login, client_id: int, user: str, addr: str, timeout: float) -> int:
    """CLIENT KILL ID id USER user ADDR addr (all three must match; never this connection)."""
    return int(
        _call(
            login,
            timeout,
            f"CLIENT KILL ID {client_id}",
            lambda c: c.client_kill_filter(_id=str(client_id), user=user, addr=addr, skipme=True),
        )
    )

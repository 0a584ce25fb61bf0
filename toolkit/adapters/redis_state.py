"""Redis: INFO, CONFIG GET as the ops user, and a bounded SCAN sample of TTLs under the app's prefix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from toolkit.adapters.errors import TargetError
from toolkit.domain.runbooks.redis_clients import RedisClient
from toolkit.domain.snapshot import RedisState

CONFIG_KEYS = ("maxmemory", "maxmemory-policy", "maxclients", "save", "appendonly", "protected-mode", "bind")
# redis-py retries a refused connection with backoff by default: doctor reports it at once instead.
_NO_RETRY = Retry(NoBackoff(), 0)
SAMPLE_LIMIT = 1000  # keys looked at, at most: SCAN in pages of 100, never KEYS


@dataclass(frozen=True)
class RedisTarget:
    """Where one Redis listens and which ACL user doctor uses."""

    host: str
    address: str
    port: int
    user: str | None
    password: str | None = field(repr=False)
    key_prefix: str = ""

    @property
    def label(self) -> str:
        """How messages name the target."""
        return f"redis@{self.address}:{self.port}"


def read_state(target: RedisTarget, timeout: float) -> RedisState:
    """Read INFO, CONFIG GET and a TTL sample; raise TargetError naming the cause on failure."""
    client = _ops_client(target, timeout)
    during = "connecting"
    try:
        client.ping()
        during = "INFO"
        info: dict[str, Any] = client.info()
        during = "CONFIG GET"
        config: dict[str, str] = {}
        for key in CONFIG_KEYS:
            config.update({str(k): str(v) for k, v in client.config_get(key).items()})
        during = "CLIENT LIST"
        by_ip = _clients_by_ip(client, target.user)
        during = "SCAN"
        sampled, without_ttl = _sample_ttls(client, target.key_prefix)
    except redis.exceptions.AuthenticationError as exc:
        raise TargetError(
            target.label, during, "authentication failed", "check the ops user and password"
        ) from exc
    except redis.exceptions.NoPermissionError as exc:
        raise TargetError(
            target.label,
            during,
            "permission denied (NOPERM)",
            "give the ops user what doctor needs (INFO, CONFIG GET, CLIENT LIST, SCAN)",
        ) from exc
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as exc:
        raise TargetError.from_exception(target.label, during, exc, timeout) from None
    finally:
        client.close()
    return RedisState(
        target.host,
        f"{target.address}:{target.port}",
        info,
        config,
        sampled,
        without_ttl,
        target.key_prefix,
        anonymous_ok=_answers_without_auth(target, timeout),
        clients_by_ip=by_ip,
    )


def _clients_by_ip(client: redis.Redis, ops_user: str | None) -> dict[str, int]:
    """Connections of every user but the ops user (doctor, the runbooks), counted by client IP."""
    listed = (RedisClient.from_fields(entry) for entry in client.client_list())
    return dict(Counter(c.ip for c in listed if c.user != (ops_user or "default")))


def _answers_without_auth(target: RedisTarget, timeout: float) -> bool:
    """Whether a client with no credentials gets an answer to PING (authentication disabled)."""
    client = redis.Redis(
        host=target.address,
        port=target.port,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        retry=_NO_RETRY,
    )
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        client.close()


def _sample_ttls(client: redis.Redis, prefix: str) -> tuple[int, int]:
    """Count keys without a TTL among at most SAMPLE_LIMIT keys under ``prefix``."""
    pattern = f"{_escape(prefix)}*" if prefix else "*"
    sampled = without = 0
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, match=pattern, count=100)
        if keys:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.ttl(key)
            for ttl in pipe.execute():
                sampled += 1
                without += ttl == -1
        if cursor == 0 or sampled >= SAMPLE_LIMIT:
            return sampled, without


def _escape(prefix: str) -> str:
    """Escape glob characters so a prefix matches literally.

    >>> _escape("app:v[1]*")
    'app:v\\\\[1\\\\]\\\\*'
    """
    return "".join("\\" + c if c in "*?[]\\" else c for c in prefix)


def _ops_client(target: RedisTarget, timeout: float) -> redis.Redis:
    return redis.Redis(
        host=target.address,
        port=target.port,
        username=target.user,
        password=target.password,
        socket_connect_timeout=timeout,
        socket_timeout=timeout,
        decode_responses=True,
        retry=_NO_RETRY,
    )


def _scan_prefix(client: redis.Redis, prefix: str) -> Iterator[list[str]]:
    """Pages of keys under ``prefix``. SCAN stays correct while keys are deleted between pages."""
    cursor = 0
    while True:
        cursor, keys = client.scan(cursor=cursor, match=f"{_escape(prefix)}*", count=500)
        if keys:
            yield [str(k) for k in keys]
        if cursor == 0:
            return


def count_prefix(target: RedisTarget, prefix: str, timeout: float) -> int:
    """Keys under ``prefix``, counted with SCAN (never KEYS)."""
    client = _ops_client(target, timeout)
    try:
        return sum(len(page) for page in _scan_prefix(client, prefix))
    except redis.exceptions.RedisError as exc:
        raise TargetError.from_exception(target.label, "SCAN", exc, timeout) from None
    finally:
        client.close()


def unlink_prefix(target: RedisTarget, prefix: str, batch: int, timeout: float) -> int:
    """UNLINK every key under ``prefix`` in batches of ``batch``; return how many were removed."""
    client = _ops_client(target, timeout)
    removed = 0
    try:
        for page in _scan_prefix(client, prefix):
            for i in range(0, len(page), batch):
                removed += int(client.unlink(*page[i : i + batch]))
    except redis.exceptions.RedisError as exc:
        raise TargetError.from_exception(target.label, "UNLINK", exc, timeout) from None
    finally:
        client.close()
    return removed

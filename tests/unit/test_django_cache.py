"""toolkit.django.cache.SharedBlockingPool through Django's own cache handler (docs/sizing.md, "Redis").

Django's ``caches`` is context-local: under ASGI each request builds its own ``RedisCache`` and, with
redis-py's default pool class, its own connection pool. With ``SharedBlockingPool`` every one of them
gets the process's one bounded pool. Nothing here connects to Redis (pools connect lazily); the lab
test tests/fleet/test_redis_pool_bound.py counts the connections a burst really opens.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from django.core.cache import caches
from django.test import override_settings

from tests.unit.test_query_budget import configure_django
from toolkit.django.cache import SharedBlockingPool

configure_django()

ROOT = Path(__file__).resolve().parents[2]
# Nothing listens on port 1: a test that connected would fail, not pass.
LOCATION = "redis://127.0.0.1:1/0"
SHARED = "toolkit.django.cache.SharedBlockingPool"


def _caches(pool_class: str | None, **options: Any) -> dict[str, Any]:
    opts: dict[str, Any] = dict(options)
    if pool_class:
        opts["pool_class"] = pool_class
    return {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": LOCATION,
            "OPTIONS": opts,
        }
    }


def _pool_of_current_context() -> tuple[object, redis.ConnectionPool]:
    cache = caches["default"]
    return cache, cache._cache._get_connection_pool(write=True)  # type: ignore[attr-defined]


def _pools_per_request(requests: int) -> list[tuple[object, redis.ConnectionPool]]:
    """What each of ``requests`` concurrent asyncio tasks (a context each, as ASGI requests) gets."""

    async def main() -> list[tuple[object, redis.ConnectionPool]]:
        async def request() -> tuple[object, redis.ConnectionPool]:
            await asyncio.sleep(0)
            return await asyncio.to_thread(_pool_of_current_context)

        return list(await asyncio.gather(*(request() for _ in range(requests))))

    return asyncio.run(main())


def test_without_the_pool_class_every_request_context_gets_a_pool_of_its_own() -> None:
    """The defect: one RedisCache and one unbounded pool per request context."""
    with override_settings(CACHES=_caches(None)):
        seen = _pools_per_request(8)
    assert len({id(cache) for cache, _ in seen}) == 8
    assert len({id(pool) for _, pool in seen}) == 8


def test_every_request_context_and_thread_shares_one_bounded_pool() -> None:
    with override_settings(CACHES=_caches(SHARED, max_connections=4, timeout=5)):
        seen = _pools_per_request(8)
        threads: list[tuple[object, redis.ConnectionPool]] = []
        workers = [
            threading.Thread(target=lambda: threads.append(_pool_of_current_context())) for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    assert len({id(cache) for cache, _ in seen}) == 8, "each context still has its own RedisCache"
    pools = {id(pool): pool for _, pool in seen + threads}
    assert len(pools) == 1
    (pool,) = pools.values()
    assert isinstance(pool, SharedBlockingPool)
    assert pool.max_connections == 4
    assert pool.timeout == 5
    assert pool.connection_kwargs["host"] == "127.0.0.1"
    assert pool.connection_kwargs["port"] == 1


def test_other_options_or_urls_get_their_own_pool() -> None:
    first = SharedBlockingPool.from_url(LOCATION, max_connections=3, timeout=1)
    assert SharedBlockingPool.from_url(LOCATION, max_connections=3, timeout=1) is first
    assert SharedBlockingPool.from_url(LOCATION, max_connections=5, timeout=1) is not first
    assert SharedBlockingPool.from_url("redis://127.0.0.1:1/1", max_connections=3, timeout=1) is not first


@pytest.mark.parametrize("bound", [None, 0, "4"])
def test_it_refuses_a_missing_or_invalid_bound(bound: object) -> None:
    options = {} if bound is None else {"max_connections": bound}
    with pytest.raises(ValueError) as err:
        SharedBlockingPool.from_url(LOCATION, **options)
    assert str(err.value) == (
        f"SharedBlockingPool: CACHES OPTIONS max_connections is {bound!r}: "
        "set it to the node's django_threads (1 or more)"
    )


def test_a_forked_worker_starts_with_an_empty_pool_of_its_own() -> None:
    """redis-py resets a pool whose pid is not the process's (ConnectionPool._checkpid)."""
    pool = SharedBlockingPool.from_url(LOCATION, max_connections=2, timeout=1)
    inherited = object()  # stands for a socket the parent opened before forking
    pool._connections.append(inherited)  # type: ignore[arg-type]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: what a gunicorn or uvicorn worker sees after the fork
        try:
            pool._checkpid()
            ok = pool.pid == os.getpid() and pool._connections == [] and pool.pool.qsize() == 2
            os.write(write, b"1" if ok else b"0")
        finally:
            os._exit(0)
    pool._connections.remove(inherited)  # type: ignore[arg-type]
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read, "rb") as pipe:
        assert pipe.read() == b"1"


def test_the_demo_app_runs_a_byte_identical_copy() -> None:
    """The lab's hosts do not install the toolkit: the demo carries the module itself."""
    product = ROOT / "toolkit" / "django" / "cache.py"
    demo = ROOT / "roles" / "django_demo" / "files" / "app" / "demo" / "cache.py"
    assert demo.read_bytes() == product.read_bytes(), f"copy {product} to {demo}"

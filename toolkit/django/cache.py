"""One bounded Redis connection pool per process for Django's ``RedisCache``: ``SharedBlockingPool``.

Why: Django keeps its caches in ``Local(thread_critical=False)``, a context-local store
(``django/utils/connection.py``). Under ASGI every request runs in a context of its own, so every
request builds its own ``RedisCache``, ``RedisCacheClient`` and redis-py ``ConnectionPool``
(``django/core/cache/backends/redis.py``: ``_get_connection_pool`` calls ``pool_class.from_url``), and
``RedisCache`` has no ``close()``: each request's connection stays open until the garbage collector
frees it. Measured on the lab: an ASGI node planned at 9 Redis clients held 45 under a burst and filled
Redis's ``maxclients`` (docs/sizing.md, "Redis under load").

``SharedBlockingPool.from_url`` returns the same ``redis.BlockingConnectionPool`` for the same URL and
options in a process, whichever context or thread asks, so a process holds at most
``max_connections`` connections to that Redis; a request that finds them all in use waits up to
``timeout`` seconds for one (then redis-py raises ``ConnectionError``) instead of opening another.
Set ``max_connections`` to the node's planned per-process bound, ``django_threads``: the toolkit's
plan counts each app node as ``processes x django_threads`` Redis clients (docs/sizing.md, "Redis").

    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": "redis://10.0.0.15:6379/0",
            "OPTIONS": {
                "pool_class": "toolkit.django.cache.SharedBlockingPool",
                "max_connections": 4,  # the node's django_threads
                "timeout": 5,  # seconds a request waits for a free connection
            },
        }
    }

Fork safety: the registry is inherited by a forked worker (gunicorn, uvicorn --workers), but redis-py
checks the pool's pid on every checkout and release (``ConnectionPool._checkpid``) and resets a pool
made in another process: the child opens its own connections and never uses the parent's sockets.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import redis

__all__ = ["SharedBlockingPool"]


class SharedBlockingPool(redis.BlockingConnectionPool):
    """A ``BlockingConnectionPool`` that ``from_url`` shares per (class, URL, options) in a process."""

    _shared: ClassVar[dict[tuple[object, ...], SharedBlockingPool]] = {}
    _shared_lock: ClassVar[threading.Lock] = threading.Lock()

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> SharedBlockingPool:
        """The process's pool for ``url`` and ``kwargs``; made on first use."""
        if not isinstance(kwargs.get("max_connections"), int) or kwargs["max_connections"] < 1:
            raise ValueError(
                f"{cls.__name__}: CACHES OPTIONS max_connections is "
                f"{kwargs.get('max_connections')!r}: set it to the node's django_threads (1 or more)"
            )
        # repr, not the values: options may hold unhashable values; the key is never printed.
        key = (cls, url, tuple(sorted((name, repr(value)) for name, value in kwargs.items())))
        with cls._shared_lock:
            pool = cls._shared.get(key)
            if pool is None:
                # redis-py's own from_url parses the URL and calls cls(**options): one pool made here.
                pool = super().from_url(url, **kwargs)
                cls._shared[key] = pool
            return pool

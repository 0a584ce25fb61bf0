"""``BoundedBackends``: the admission bound that keeps an ASGI process within the connections the plan counts.

Under WSGI (gunicorn gthread) a process serves at most ``threads`` requests at once, so it never
holds more database connections than the plan counts for it (``workers x threads``). Under ASGI
nothing does that: Django runs every request in ``async with ThreadSensitiveContext()``
(django/core/handlers/asgi.py), and asgiref gives each such context its own
``ThreadPoolExecutor(max_workers=1)`` (asgiref/sync.py, SyncToAsync.__call__). Each in-flight
request therefore has a thread of its own, and Django's connections are per thread: one database
connection per in-flight request, with no pool to bound them (docs/sizing.md, "What bounds an ASGI
worker's connections", cites the lines).

This middleware is that bound. It admits at most ``settings.TOOLKIT_BACKEND_SLOTS`` requests at a
time per process (the inventory's ``django_threads`` of the node) and queues the rest on an
``asyncio.Semaphore``; before it frees a slot it closes the request's database connections
(``close_old_connections`` in the request's own thread), so a queued request never meets a
connection that is still open. Views marked with :func:`without_backends` (health checks, pure
``asyncio.sleep`` views) and URLs that resolve to no view are never queued. Under WSGI it passes
every request through: the server's threads are the bound there.

Put it first in ``MIDDLEWARE``, so that no middleware before it touches the database::

    MIDDLEWARE = ["toolkit.django.middleware.BoundedBackends", ...]
    TOOLKIT_BACKEND_SLOTS = 4   # the node's django_threads

A view that streams its response from the database after the view returns keeps its connection
beyond the slot: materialise such responses, or count them in ``django_extra_clients``.

The lab's demo app (roles/django_demo/files/app/demo/middleware.py) carries a byte-identical copy,
because its hosts do not install the toolkit; tests/unit/test_django_middleware.py holds the two
together. So this module imports only the standard library, asgiref and Django.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django import conf  # type: ignore[import-untyped]  # not `settings`: doctest collection would touch it
from django.core.exceptions import ImproperlyConfigured  # type: ignore[import-untyped]
from django.db import close_old_connections  # type: ignore[import-untyped]
from django.urls import Resolver404, resolve  # type: ignore[import-untyped]

SETTING = "TOOLKIT_BACKEND_SLOTS"
V = TypeVar("V", bound=Callable[..., Any])


def without_backends(view: V) -> V:
    """Mark a view that uses neither the database nor the cache: it is never queued."""
    view.toolkit_without_backends = True  # type: ignore[attr-defined]
    return view


def backend_slots(value: object) -> int:
    """The admission bound from the setting's value: a whole number of at least 1.

    >>> backend_slots(4)
    4
    >>> backend_slots("0")
    Traceback (most recent call last):
    ...
    ValueError: settings.TOOLKIT_BACKEND_SLOTS is '0': set it to the node's django_threads (1 or more)
    """
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or int(text) < 1:
        raise ValueError(f"settings.{SETTING} is {value!r}: set it to the node's django_threads (1 or more)")
    return int(text)


def _queued(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return not getattr(match.func, "toolkit_without_backends", False)


class BoundedBackends:
    """Admit at most ``settings.TOOLKIT_BACKEND_SLOTS`` backend-using requests at once per ASGI process."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        try:
            self.slots = backend_slots(getattr(conf.settings, SETTING, None))
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        # One semaphore per process, created on first use inside the worker's event loop.
        self._semaphore: asyncio.Semaphore | None = None

    def __call__(self, request: Any) -> Any | Awaitable[Any]:
        if self.is_async:
            return self.__acall__(request)
        return self.get_response(request)

    async def __acall__(self, request: Any) -> Any:
        if not _queued(request.path_info):
            return await self.get_response(request)
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.slots)
        async with self._semaphore:
            response = await self.get_response(request)
            # The request's own thread (its ThreadSensitiveContext) closes its connection before the
            # slot goes to the next request: with CONN_MAX_AGE 0 nothing outlives the slot.
            await sync_to_async(close_old_connections)()
        return response

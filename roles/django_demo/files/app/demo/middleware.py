"""Keep an ASGI node's database and cache clients within the plan.

Under WSGI (gunicorn gthread) a process serves at most ``threads`` requests at once, so it never
holds more database connections than the plan counts for it. Under ASGI Django runs every sync view
and every async ORM call in a thread of the request's own, so concurrency, and with it the number of
connections to PgBouncer, would grow with the load. This middleware admits at most ``threads``
requests per process at a time to views marked with :func:`uses_backends` and closes the request's
database connection before the next one is admitted. Views that touch neither (health, sleeps) are
never queued.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

V = TypeVar("V", bound=Callable[..., Any])


def uses_backends(view: V) -> V:
    """Mark a view that uses the database or the cache."""
    view.uses_backends = True  # type: ignore[attr-defined]
    return view


def _marked(request: HttpRequest) -> bool:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return False
    return bool(getattr(match.func, "uses_backends", False))


class BoundedBackends:
    """Admit at most ``TOOLKIT_DEMO["backend_slots"]`` backend requests at once per ASGI process."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)
        self.slots = int(settings.TOOLKIT_DEMO["backend_slots"])
        # Created on first use, inside the worker's event loop.
        self._semaphore: asyncio.Semaphore | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        response: HttpResponse = self.get_response(request)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        if not _marked(request):
            response: HttpResponse = await self.get_response(request)
            return response
        if self._semaphore is None:
            self._semaphore = asyncio.Semaphore(self.slots)
        async with self._semaphore:
            response = await self.get_response(request)
            # The request's thread closes its connection (CONN_MAX_AGE 0) before the slot is freed.
            await sync_to_async(close_old_connections)()
        return response

"""toolkit.django.middleware.BoundedBackends, through Django's own ASGIHandler (docs/sizing.md, "What bounds
an ASGI worker's connections").

Without the middleware, N concurrent requests to a sync view run on N threads at once (one
ThreadSensitiveContext, so one thread and one database connection, per request): nothing bounds them.
With it, at most TOOLKIT_BACKEND_SLOTS run at once, and views marked ``without_backends`` are never
queued. The lab's demo app carries a byte-identical copy of the module.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.asgi import ASGIHandler
from django.http import HttpRequest, JsonResponse
from django.test import override_settings
from django.urls import path

from tests.unit.test_query_budget import configure_django
from toolkit.django.middleware import BoundedBackends, without_backends

configure_django()

ROOT = Path(__file__).resolve().parents[2]
MIDDLEWARE = "toolkit.django.middleware.BoundedBackends"
HOLD_S = 0.15


class Meter:
    """Sync views in flight at once, and the threads they ran on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0
        self.threads: set[int] = set()

    def view(self, request: HttpRequest) -> JsonResponse:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)
            self.threads.add(threading.get_ident())
        time.sleep(HOLD_S)
        with self.lock:
            self.now -= 1
        return JsonResponse({"ok": True})


def _urls(meter: Meter) -> ModuleType:
    def hold(request: HttpRequest) -> JsonResponse:
        return meter.view(request)

    @without_backends
    def free(request: HttpRequest) -> JsonResponse:
        return meter.view(request)

    urls = ModuleType("bounded_backends_urls")  # ROOT_URLCONF may be a module object (hashable)
    urls.urlpatterns = [path("hold/", hold), path("free/", free)]  # type: ignore[attr-defined]
    return urls


async def _one(handler: ASGIHandler, url: str) -> int:
    scope = {"type": "http", "method": "GET", "path": url, "query_string": b"", "headers": []}
    sent: list[dict[str, Any]] = []
    first = True
    never = asyncio.Event()

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:
            first = False
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # no disconnect: the handler cancels this wait when the response is sent
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await handler(scope, receive, send)
    return int(sent[0]["status"])


def _serve(n: int, url: str, middleware: list[str], slots: object = 4) -> tuple[Meter, list[int]]:
    meter = Meter()
    with override_settings(ROOT_URLCONF=_urls(meter), MIDDLEWARE=middleware, TOOLKIT_BACKEND_SLOTS=slots):
        handler = ASGIHandler()

        async def many() -> list[int]:
            return list(await asyncio.gather(*(_one(handler, url) for _ in range(n))))

        statuses = asyncio.run(many())
    return meter, statuses


def test_without_a_bound_every_concurrent_request_runs_on_a_thread_of_its_own() -> None:
    meter, statuses = _serve(12, "/hold/", middleware=[])
    print(f"no middleware: 12 requests, peak {meter.peak} in flight on {len(meter.threads)} threads")
    assert statuses == [200] * 12
    assert meter.peak == 12
    assert len(meter.threads) == 12


def test_bounded_backends_admits_at_most_the_slots_per_process() -> None:
    meter, statuses = _serve(12, "/hold/", middleware=[MIDDLEWARE], slots=4)
    print(f"slots 4: 12 requests, peak {meter.peak} in flight")
    assert statuses == [200] * 12
    assert meter.peak == 4


def test_views_without_backends_are_never_queued() -> None:
    meter, statuses = _serve(12, "/free/", middleware=[MIDDLEWARE], slots=2)
    assert statuses == [200] * 12
    assert meter.peak == 12


def test_unresolved_urls_are_not_queued() -> None:
    _, statuses = _serve(3, "/nowhere/", middleware=[MIDDLEWARE], slots=1)
    assert statuses == [404] * 3


@pytest.mark.parametrize("slots", [None, 0, "four", True])
def test_a_missing_or_invalid_setting_is_one_line_naming_it(slots: object) -> None:
    with override_settings(TOOLKIT_BACKEND_SLOTS=slots), pytest.raises(ImproperlyConfigured) as err:
        BoundedBackends(lambda request: None)
    assert str(err.value) == (
        f"settings.TOOLKIT_BACKEND_SLOTS is {slots!r}: set it to the node's django_threads (1 or more)"
    )


def test_under_wsgi_it_passes_every_request_through() -> None:
    with override_settings(TOOLKIT_BACKEND_SLOTS=1):
        middleware = BoundedBackends(lambda request: ("response", request))
    assert middleware("request") == ("response", "request")


def test_the_demo_app_runs_a_byte_identical_copy() -> None:
    """The lab's hosts do not install the toolkit: the demo carries the module itself."""
    product = ROOT / "toolkit" / "django" / "middleware.py"
    demo = ROOT / "roles" / "django_demo" / "files" / "app" / "demo" / "middleware.py"
    assert demo.read_bytes() == product.read_bytes(), f"copy {product} to {demo}"

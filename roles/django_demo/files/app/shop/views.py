"""JSON endpoints of the demo app, with the faulty variants the incident drills exercise.

Faulty on purpose (the drills inject load against them):

- ``books_overfetch``: every book with every column, an unscoped select_related() and prefetches
  of rows nobody shows, to serialise the same few fields as ``books``.
- ``idle_transaction``: one query inside a transaction, then a sleep while the transaction stays
  open, so the request holds a server connection "idle in transaction" at PgBouncer and PostgreSQL.
- ``async_blocking``: time.sleep() inside ``async def``: it blocks the worker's event loop, so every
  other request of the process waits. ``async_sleep`` is the fixed variant.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from demo.middleware import without_backends
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Prefetch
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from shop.models import Book, Tag

PAGE = 50
MAX_MS = 300_000  # the pool-exhaustion drill holds for 90 s


def _node() -> str:
    return str(settings.TOOLKIT_DEMO["node"])


def _error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message, "node": _node()}, status=status)


def _milliseconds(request: HttpRequest, default: int) -> int | JsonResponse:
    raw = request.GET.get("ms", str(default))
    if not raw.isdigit() or int(raw) > MAX_MS:
        return _error(400, f"ms is {raw!r}: give whole milliseconds from 0 to {MAX_MS}")
    return int(raw)


def _scoped_books() -> Any:
    """The list the views show: the first page, only the columns it prints, the author joined."""
    return Book.objects.select_related("author").only("id", "title", "author__name").order_by("id")[:PAGE]


def _row(book: Book) -> dict[str, Any]:
    return {"id": book.id, "title": book.title, "author": book.author.name}


@require_GET
@without_backends
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"ok": True, "node": _node()})


@require_GET
def books(request: HttpRequest) -> JsonResponse:
    rows = [_row(b) for b in _scoped_books()]
    return JsonResponse({"count": len(rows), "books": rows})


@require_GET
def book_detail(request: HttpRequest, book_id: int) -> JsonResponse:
    book = (
        Book.objects.select_related("author")
        .only("id", "title", "author__name")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name").order_by("name")))
        .filter(pk=book_id)
        .first()
    )
    if book is None:
        return _error(404, f"no book with id {book_id}")
    return JsonResponse({**_row(book), "tags": [t.name for t in book.tags.all()]})


@require_GET
def books_overfetch(request: HttpRequest) -> JsonResponse:
    # FAULTY: no page, every column of books and authors, and two prefetches the output never uses.
    queryset = Book.objects.select_related().prefetch_related("tags", "author__books").order_by("id")
    rows = [_row(b) for b in queryset]
    return JsonResponse({"count": len(rows), "books": rows})


@require_GET
def idle_transaction(request: HttpRequest) -> JsonResponse:
    ms = _milliseconds(request, default=500)
    if isinstance(ms, JsonResponse):
        return ms
    # FAULTY: the transaction stays open, doing nothing, while the request waits.
    with transaction.atomic():
        first = Book.objects.order_by("id").values_list("id", flat=True).first()
        time.sleep(ms / 1000)
    return JsonResponse({"node": _node(), "ms": ms, "first_book": first})


@require_GET
async def async_books(request: HttpRequest) -> JsonResponse:
    rows = [_row(b) async for b in _scoped_books()]
    return JsonResponse({"count": len(rows), "books": rows})


@require_GET
@without_backends
async def async_blocking(request: HttpRequest) -> JsonResponse:
    ms = _milliseconds(request, default=100)
    if isinstance(ms, JsonResponse):
        return ms
    # FAULTY: a blocking call in an async view stops the event loop for every request of the process.
    time.sleep(ms / 1000)
    return JsonResponse({"node": _node(), "ms": ms, "sleep": "blocking"})


@require_GET
@without_backends
async def async_sleep(request: HttpRequest) -> JsonResponse:
    ms = _milliseconds(request, default=100)
    if isinstance(ms, JsonResponse):
        return ms
    await asyncio.sleep(ms / 1000)
    return JsonResponse({"node": _node(), "ms": ms, "sleep": "async"})


@csrf_exempt
@require_http_methods(["GET", "PUT", "POST"])
def cache_entry(request: HttpRequest, key: str) -> JsonResponse:
    who = {"node": _node(), "pid": os.getpid()}
    if request.method == "GET":
        value = cache.get(key)
        return JsonResponse({"key": key, "value": value, "hit": value is not None, **who})
    try:
        value = request.body.decode("utf-8")
    except UnicodeDecodeError:
        return _error(400, "the body must be UTF-8 text")
    cache.set(key, value)
    return JsonResponse({"key": key, "value": value, **who})

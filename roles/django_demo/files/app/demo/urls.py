"""URLs of the demo app: JSON endpoints only (see shop.views)."""

from django.urls import path, register_converter
from shop import views


class CacheKey:
    """Cache keys in URLs: letters, digits, '_', '.', '-', up to 200 characters."""

    regex = r"[A-Za-z0-9_.-]{1,200}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(CacheKey, "cachekey")

urlpatterns = [
    path("healthz", views.healthz, name="healthz"),
    path("books/", views.books, name="books"),
    path("books/<int:book_id>/", views.book_detail, name="book-detail"),
    path("books-overfetch/", views.books_overfetch, name="books-overfetch"),
    path("idle-transaction/", views.idle_transaction, name="idle-transaction"),
    path("async/books/", views.async_books, name="async-books"),
    path("async/blocking/", views.async_blocking, name="async-blocking"),
    path("async/sleep/", views.async_sleep, name="async-sleep"),
    path("cache/<cachekey:key>/", views.cache_entry, name="cache-entry"),
]

"""``manage.py seed``: the demo data set, deterministic and idempotent.

Every row has a natural key (tag name, author name, book code), so a second run inserts nothing.
The command prints one JSON line with the rows it created; the role reports a change only when that
total is not zero.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from shop.models import Author, Book, Tag

WORDS = (
    "pool",
    "connection",
    "transaction",
    "cursor",
    "replica",
    "index",
    "vacuum",
    "checkpoint",
    "latency",
    "throughput",
    "cache",
    "eviction",
    "worker",
    "thread",
    "queue",
    "backlog",
    "budget",
    "timeout",
    "session",
    "lock",
    "snapshot",
    "query",
    "planner",
    "buffer",
    "commit",
    "rollback",
    "shard",
    "tenant",
    "migration",
    "schema",
    "backup",
    "restore",
    "metric",
    "alert",
)


def words(seed: int, count: int) -> str:
    """``count`` words chosen by arithmetic on ``seed``: the same text on every run."""
    return " ".join(WORDS[(seed * 7919 + i * 104729 + i * i) % len(WORDS)] for i in range(count))


def book_tags(index: int, tags: int) -> set[int]:
    """One to three tag numbers for book ``index``."""
    return {index % tags, (index * 7 + 3) % tags, (index * 13 + 5) % tags}


class Command(BaseCommand):
    help = "Create the demo authors, books and tags (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--authors", type=int, default=200)
        parser.add_argument("--books", type=int, default=2000)
        parser.add_argument("--tags", type=int, default=20)

    def handle(self, *args: Any, **options: Any) -> None:
        n_authors, n_books, n_tags = options["authors"], options["books"], options["tags"]
        if min(n_authors, n_books, n_tags) < 1:
            self.stderr.write("seed: --authors, --books and --tags must each be 1 or more")
            raise SystemExit(64)
        through = Book.tags.through
        before = self._counts(through)
        with transaction.atomic():
            Tag.objects.bulk_create([Tag(name=f"tag-{t:02d}") for t in range(n_tags)], ignore_conflicts=True)
            Author.objects.bulk_create(
                [
                    Author(name=f"Author {a:04d}", email=f"author{a:04d}@example.org", bio=words(a, 250))
                    for a in range(n_authors)
                ],
                ignore_conflicts=True,
            )
            tag_ids = dict(Tag.objects.values_list("name", "id"))
            author_ids = dict(Author.objects.values_list("name", "id"))
            start = datetime.date(2000, 1, 1)
            Book.objects.bulk_create(
                [
                    Book(
                        code=f"B{b:06d}",
                        title=f"{words(b, 4).title()} {b}",
                        author_id=author_ids[f"Author {b % n_authors:04d}"],
                        published=start + datetime.timedelta(days=b % 9000),
                        price_cents=500 + (b * 37) % 5000,
                        summary=words(b + 1, 60),
                        body=words(b + 2, 300),
                        notes=words(b + 3, 120),
                    )
                    for b in range(n_books)
                ],
                ignore_conflicts=True,
                batch_size=500,
            )
            book_ids = dict(Book.objects.values_list("code", "id"))
            through.objects.bulk_create(
                [
                    through(book_id=book_ids[f"B{b:06d}"], tag_id=tag_ids[f"tag-{t:02d}"])
                    for b in range(n_books)
                    for t in sorted(book_tags(b, n_tags))
                ],
                ignore_conflicts=True,
                batch_size=2000,
            )
        after = self._counts(through)
        created = {name: after[name] - before[name] for name in after}
        self.stdout.write(json.dumps({"created": sum(created.values()), "rows": created, "totals": after}))

    @staticmethod
    def _counts(through: Any) -> dict[str, int]:
        return {
            "tags": Tag.objects.count(),
            "authors": Author.objects.count(),
            "books": Book.objects.count(),
            "book_tags": through.objects.count(),
        }

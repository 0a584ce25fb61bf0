"""Authors, books and tags. The wide text columns make fetching columns a view never shows cost
something measurable (the over-fetching drill)."""

from django.db import models


class Tag(models.Model):
    name = models.CharField(max_length=40, unique=True)

    def __str__(self) -> str:
        return self.name


class Author(models.Model):
    name = models.CharField(max_length=100, unique=True)
    email = models.CharField(max_length=200)
    bio = models.TextField()

    def __str__(self) -> str:
        return self.name


class Book(models.Model):
    code = models.CharField(max_length=16, unique=True)
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.CASCADE, related_name="books")
    tags = models.ManyToManyField(Tag, related_name="books")
    published = models.DateField()
    price_cents = models.IntegerField()
    summary = models.TextField()
    body = models.TextField()
    notes = models.TextField()

    def __str__(self) -> str:
        return self.title

"""Operations toolkit for Django on PostgreSQL behind PgBouncer, with Redis as the shared cache."""

__version__ = "0.1.0"

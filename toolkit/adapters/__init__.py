"""All I/O: the inventory, the PgBouncer admin console, PostgreSQL, Redis, Django settings."""

"""Settings of the demo app. Everything that differs per node comes from the node's config file.

The role renders /opt/toolkit-demo/etc/<node>.json from the toolkit plan and the inventory. The
node is named by the environment:

- TOOLKIT_DEMO_NODE (required): the inventory host name, e.g. ``app-1``. It is also the
  ``application_name`` of every database connection, so the doctor can attribute backends to nodes.
- TOOLKIT_DEMO_ETC: the directory of the config files (default /opt/toolkit-demo/etc).
- TOOLKIT_DEMO_CACHE: ``redis`` (default, the shared cache) or ``locmem`` (one cache per process,
  the cache-divergence drill).
- TOOLKIT_DEMO_DB: ``pgbouncer`` (default: the node's PgBouncer) or ``direct`` (PostgreSQL itself,
  for migrations and the seed data: the migrations bypass slot of the plan).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

NODE = os.environ.get("TOOLKIT_DEMO_NODE", "")
if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", NODE):
    raise ImproperlyConfigured(
        f"TOOLKIT_DEMO_NODE is {NODE!r}: set it to the node's inventory name (for example app-1)"
    )
CONFIG_DIR = Path(os.environ.get("TOOLKIT_DEMO_ETC") or "/opt/toolkit-demo/etc")
CONFIG_PATH = CONFIG_DIR / f"{NODE}.json"


def _choice(variable: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(variable) or allowed[0]
    if value not in allowed:
        raise ImproperlyConfigured(f"{variable} is {value!r}: use one of {', '.join(allowed)}")
    return value


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{path}: cannot read the node's config ({exc.strerror}); deploy the node with "
            "playbooks/lab.yml, or point TOOLKIT_DEMO_ETC at the directory that holds it"
        ) from None
    except ValueError as exc:
        raise ImproperlyConfigured(f"{path}: not valid JSON ({exc}); redeploy the node") from None
    if not isinstance(data, dict) or data.get("node") != NODE:
        raise ImproperlyConfigured(f"{path}: not the config of node {NODE!r}; redeploy the node")
    return data


CACHE_KIND = _choice("TOOLKIT_DEMO_CACHE", ("redis", "locmem"))
DATABASE_ROUTE = _choice("TOOLKIT_DEMO_DB", ("pgbouncer", "direct"))
_config = _load(CONFIG_PATH)

# What the views and the middleware read about the node (no secrets).
TOOLKIT_DEMO = {
    "node": NODE,
    "server": _config["server"],
    "release": _config.get("release", ""),
}
# The admission bound of an ASGI process (demo.middleware, a copy of toolkit.django.middleware): at
# most this many requests use the database or the cache at once per process. It is the inventory's
# django_threads of the node (the role writes it into the node's config as "threads"): the plan
# counts an ASGI node as workers x threads database clients, and this is what makes that true.
TOOLKIT_BACKEND_SLOTS = int(_config["threads"])

SECRET_KEY = _config["secret_key"]
DEBUG = False
# The node's own bind address too, so a client on another host can reach it by address.
ALLOWED_HOSTS = sorted({"127.0.0.1", "localhost", str(_config.get("bind", "127.0.0.1"))})

INSTALLED_APPS = ["shop"]
# First, so that nothing before it opens a database connection outside the bound.
MIDDLEWARE = ["demo.middleware.BoundedBackends"]
ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"
TEMPLATES: list[dict[str, Any]] = []

USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_db = _config["database_direct" if DATABASE_ROUTE == "direct" else "database"]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db["name"],
        "USER": _db["user"],
        "PASSWORD": _db["password"],
        "HOST": _db["host"],
        "PORT": str(_db["port"]),
        # A connection per request, closed at its end: nothing is held between requests, and under
        # ASGI persistent connections leak (Django docs, "Databases: persistent connections").
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        # PgBouncer in transaction mode: a server-side cursor would outlive its transaction.
        "DISABLE_SERVER_SIDE_CURSORS": True,
        "OPTIONS": {
            "application_name": NODE if DATABASE_ROUTE == "pgbouncer" else "toolkit-demo-migrate",
            # libpq multi-host ("host=pgb1,pgb2"): each host down costs at most this, then the next.
            "connect_timeout": int(_db.get("connect_timeout", 5)),
            "target_session_attrs": "any",
        },
    }
}

_cache = _config["cache"]
if CACHE_KIND == "redis":
    _default_cache: dict[str, Any] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        # The password goes to the connection pool, not into LOCATION, which the doctor compares.
        "LOCATION": _cache["location"],
        "OPTIONS": {
            "username": _cache["username"],
            "password": _cache["password"],
            "socket_connect_timeout": 2,
            "socket_timeout": 5,
            # One bounded pool per process (demo.cache, a copy of toolkit.django.cache): without it
            # every ASGI request builds a pool of its own and its connection outlives the request. The
            # bound is the node's django_threads, the per-process Redis demand the plan counts.
            "pool_class": "demo.cache.SharedBlockingPool",
            "max_connections": TOOLKIT_BACKEND_SLOTS,
            # A burst above the bound waits this long for a free connection, then fails.
            "timeout": 5,
        },
    }
else:
    _default_cache = {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": f"toolkit-demo-{NODE}",
    }
# The Redis ACL lets the app user touch only keys under its prefix; Django builds prefix:version:key.
_default_cache.update({"KEY_PREFIX": _cache["key_prefix"], "TIMEOUT": int(_cache["timeout"])})
CACHES = {"default": _default_cache}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(process)d: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}

"""Read a Django project's pooling and cache settings and print them as one JSON document.

This file runs as a script in the *app's* interpreter (``python django_probe.py SETTINGS_MODULE``),
where the toolkit is not installed: it imports only the standard library and Django, and keeps to
syntax older Pythons accept. It prints schema ``toolkit.django-profile/v1`` on stdout; the toolkit
parses it with ``DjangoProfile.from_dict``.

It reads ``django.conf.settings`` and does not call ``django.setup()``: the settings module is all it
needs, and setup would import every installed app, with their side effects, for nothing.

Secrets never leave this process: PASSWORD and SECRET_KEY are never read; database OPTIONS are
copied through an allow-list; a password in a cache URL is replaced by ``***``. The masking rules are
the toolkit's own (``toolkit/domain/secrets.py``, standard library only), loaded by their path because
the toolkit is not importable in the app's interpreter.

On a failure to import Django or the settings it prints one line on stderr and exits 65; a password
in that line (a DSN in an exception's message, a ``PASSWORD`` in a dict, the value of an environment
variable named like a password) is masked too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import sys
from typing import Any

SCHEMA = "toolkit.django-profile/v1"
EXIT_DATAERR = 65
MASK = "***"
DEFAULT_CACHE_TIMEOUT = 300  # django.core.cache.backends.base.BaseCache when TIMEOUT is unset

# Database OPTIONS keys copied as they are: none of them carries a credential. Everything else
# (password, passfile, sslpassword, service, and keys we do not know) is left out.
SAFE_OPTIONS = frozenset(
    {
        "connect_timeout",
        "options",
        "sslmode",
        "application_name",
        "prepare_threshold",
        "server_side_binding",
        "isolation_level",
        "assume_role",
        "target_session_attrs",
        "keepalives",
        "keepalives_idle",
        "keepalives_interval",
        "keepalives_count",
        "tcp_user_timeout",
        "client_encoding",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "channel_binding",
        "gssencmode",
    }
)
# psycopg_pool.ConnectionPool arguments copied from OPTIONS["pool"]; "kwargs" and "conninfo" may
# hold a password, and callables (check, configure, reset) are not data.
SAFE_POOL_OPTIONS = frozenset(
    {
        "min_size",
        "max_size",
        "timeout",
        "max_waiting",
        "max_lifetime",
        "max_idle",
        "reconnect_timeout",
        "num_workers",
        "name",
        "open",
    }
)
# The masking rules, shared with the rest of the toolkit: this file's sibling package "domain".
MASKING = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "domain", "secrets.py")
# Environment values shorter than this are not masked wherever they appear ("1", "on" would be).
MIN_ENV_SECRET = 4


@functools.lru_cache(maxsize=1)
def _masking() -> Any:
    """The module toolkit/domain/secrets.py, loaded from its file (never from the app's sys.path).

    Run on another host over SSH, the probe has no toolkit beside it: the caller passes that
    module's source in the global ``TOOLKIT_MASKING_SOURCE`` (toolkit/adapters/django_settings.py).
    """
    source = globals().get("TOOLKIT_MASKING_SOURCE")
    if isinstance(source, str):
        module = type(sys)("toolkit_probe_masking")
        exec(compile(source, "toolkit/domain/secrets.py", "exec"), module.__dict__)  # noqa: S102
        return module
    spec = importlib.util.spec_from_file_location("toolkit_probe_masking", MASKING)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the masking rules from {MASKING}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _scalar(value: Any) -> Any:
    """JSON-safe copy of a plain value; anything else becomes its class name (never its repr)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return type(value).__name__


def database_options(options: dict[str, Any]) -> dict[str, Any]:
    """The allow-listed OPTIONS of one database alias.

    >>> database_options({"password": "x", "connect_timeout": 5, "pool": {"max_size": 8, "kwargs": {}}})
    {'connect_timeout': 5, 'pool': {'max_size': 8}}
    """
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key == "pool":
            if isinstance(value, dict):
                out[key] = {k: _scalar(v) for k, v in value.items() if k in SAFE_POOL_OPTIONS}
            else:
                out[key] = bool(value)
        elif key in SAFE_OPTIONS:
            out[key] = _scalar(value)
    return out


def mask_location(location: str) -> str:
    """A cache LOCATION with any password replaced by ``***``.

    >>> mask_location("redis://:s3cret@cache1:6379/0")
    'redis://:***@cache1:6379/0'
    >>> mask_location("rediss://app:s3cret@cache1:6380/1?password=x&db=1")
    'rediss://app:***@cache1:6380/1?password=***&db=1'
    >>> mask_location("redis://token@cache1")
    'redis://***@cache1'
    >>> mask_location("redis://app:p,w;d#?@cache1/0")
    'redis://app:***@cache1/0'
    >>> mask_location("unique-snowflake")
    'unique-snowflake'
    """
    return str(_masking().mask_text(location, (), MASK))


def _locations(value: Any) -> list[str]:
    """LOCATION as a list, masked; a string splits on ',' or ';' as Django's Redis and memcached
    backends do, after masking, so that a password holding ',' or ';' is not cut in two."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [str(v) for v in _masking().split_locations(value, MASK)]
    items = [str(v) for v in value] if isinstance(value, (list, tuple)) else [str(value)]
    return [mask_location(v.strip()) for v in items if v.strip()]


def _env_secrets() -> list[str]:
    """Values of environment variables named like passwords (DB_PASSWORD, SECRET_KEY, REDIS_PASS)."""
    rules = _masking()
    return [v for k, v in os.environ.items() if rules.is_secret_key(k) and len(v) >= MIN_ENV_SECRET]


def mask_error(text: str) -> str:
    """``text`` with every password the toolkit's rules find, and secret environment values, masked.

    >>> mask_error("could not connect to postgresql://app:s3cret@db/app: {'PASSWORD': 'x y'}")
    "could not connect to postgresql://app:***@db/app: {'PASSWORD': '***'}"
    """
    return str(_masking().mask_text(text, _env_secrets(), MASK))


def _port(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def profile(settings: Any, settings_module: str, django_version: str) -> dict[str, Any]:
    """The profile document of an already configured ``django.conf.settings``."""
    databases = []
    for alias, conf in (getattr(settings, "DATABASES", None) or {}).items():
        conn_max_age = conf.get("CONN_MAX_AGE", 0)
        databases.append(
            {
                "alias": str(alias),
                "engine": str(conf.get("ENGINE") or "django.db.backends.dummy"),
                "host": str(conf.get("HOST") or ""),
                "port": _port(conf.get("PORT")),
                "name": str(conf.get("NAME") or ""),
                "user": str(conf.get("USER") or ""),
                "conn_max_age": None if conn_max_age is None else int(conn_max_age),
                "conn_health_checks": bool(conf.get("CONN_HEALTH_CHECKS", False)),
                "disable_server_side_cursors": bool(conf.get("DISABLE_SERVER_SIDE_CURSORS", False)),
                "atomic_requests": bool(conf.get("ATOMIC_REQUESTS", False)),
                "options": database_options(dict(conf.get("OPTIONS") or {})),
            }
        )
    caches = []
    for alias, conf in (getattr(settings, "CACHES", None) or {}).items():
        timeout = conf.get("TIMEOUT", DEFAULT_CACHE_TIMEOUT)
        caches.append(
            {
                "alias": str(alias),
                "backend": str(conf.get("BACKEND", "")),
                "location": _locations(conf.get("LOCATION")),
                "key_prefix": str(conf.get("KEY_PREFIX") or ""),
                "version": int(conf.get("VERSION", 1)),
                "timeout": None if timeout is None else float(timeout),
            }
        )
    return {
        "schema": SCHEMA,
        "settings_module": settings_module,
        "django_version": django_version,
        "databases": databases,
        "caches": caches,
        "asgi_application": getattr(settings, "ASGI_APPLICATION", None),
        "wsgi_application": getattr(settings, "WSGI_APPLICATION", None),
        # Dotted paths only: doctor looks for an ASGI admission bound (toolkit.django.middleware).
        "middleware": [str(m) for m in (getattr(settings, "MIDDLEWARE", None) or [])],
        "backend_slots": _scalar(getattr(settings, "TOOLKIT_BACKEND_SLOTS", None)),
    }


def _one_line(exc: BaseException) -> str:
    """The exception's first line, masked (the whole message first: a quoted secret may span lines)."""
    try:
        text = mask_error(str(exc)).strip().splitlines()
    except Exception:  # the rules could not be loaded: print no part of the message
        return f"{type(exc).__name__} (message withheld: cannot load the masking rules from {MASKING})"
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def main(argv: list[str]) -> int:
    """Print the profile of the settings module named in ``argv[1]``; return the exit status."""
    if len(argv) != 2:
        sys.stderr.write("usage: django_probe.py SETTINGS_MODULE\n")
        return 64
    module = argv[1]
    try:
        _masking()
    except Exception as exc:  # no rules, no error text: a message could hold a password
        sys.stderr.write(
            f"cannot load the masking rules from {MASKING} ({type(exc).__name__}); reinstall the toolkit\n"
        )
        return EXIT_DATAERR
    # Python puts this script's directory first on sys.path; drop it so that the toolkit's own
    # adapter modules can never shadow the app's modules of the same name.
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or ".") == here:
        del sys.path[0]
    os.environ["DJANGO_SETTINGS_MODULE"] = module
    # Imported here, not at the top: a missing Django is reported as one line, not a traceback.
    try:
        import django  # type: ignore[import-untyped]  # noqa: PLC0415
        from django.conf import settings  # type: ignore[import-untyped]  # noqa: PLC0415
    except Exception as exc:
        sys.stderr.write(f"cannot import module 'django': {_one_line(exc)}; is this the app's Python?\n")
        return EXIT_DATAERR
    try:
        # A settings module that prints must not corrupt the JSON on stdout.
        with contextlib.redirect_stdout(sys.stderr):
            _ = settings.DATABASES  # the first access imports the settings module
    except Exception as exc:
        sys.stderr.write(f"cannot import settings module {module!r}: {_one_line(exc)}\n")
        return EXIT_DATAERR
    try:
        doc = profile(settings, module, django.get_version())
        text = json.dumps(doc, sort_keys=True)
    except Exception as exc:
        sys.stderr.write(f"settings module {module!r}: cannot read DATABASES/CACHES: {_one_line(exc)}\n")
        return EXIT_DATAERR
    sys.stdout.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The settings probe, run for real through load_profile against small settings modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from toolkit.adapters import django_probe
from toolkit.adapters.django_settings import PROBE, load_profile
from toolkit.domain.errors import InventoryError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "django_settings"
LEAKS = ("must-not-leak", "fixture-secret", "fixture-db-password", "fixture-redis-password")


def _raw(module: str) -> str:
    """The probe's stdout, to look for secrets in the exact bytes it prints."""
    done = subprocess.run(
        [sys.executable, str(PROBE), module],
        env={"PYTHONPATH": str(FIXTURES), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


def test_healthy_settings_profile() -> None:
    profile = load_profile("healthy_behind_pgbouncer", str(FIXTURES))
    assert profile.settings_module == "healthy_behind_pgbouncer"
    assert profile.django_version.startswith("5.2")
    assert profile.wsgi_application == "shop.wsgi.application"
    assert profile.asgi_application is None
    (db,) = profile.databases
    assert (db.alias, db.engine, db.host, db.port, db.name, db.user) == (
        "default",
        "django.db.backends.postgresql",
        "127.0.0.1",
        6432,
        "shop",
        "shop",
    )
    assert db.conn_max_age == 0
    assert db.disable_server_side_cursors is True
    assert db.atomic_requests is False
    assert dict(db.options) == {"connect_timeout": 5, "application_name": "shop-web", "sslmode": "prefer"}
    (cache,) = profile.caches
    assert cache.location == ("redis://:***@127.0.0.1:6379/0",)
    assert (cache.key_prefix, cache.version, cache.timeout) == ("shop", 1, 600.0)


def test_every_problem_profile() -> None:
    profile = load_profile("every_problem", str(FIXTURES))
    default, direct = profile.databases
    assert default.conn_max_age is None
    assert default.atomic_requests is True
    assert default.disable_server_side_cursors is False
    assert dict(default.options) == {
        "pool": {"min_size": 2, "max_size": 8},
        "options": "-c statement_timeout=5000",
    }
    assert (direct.host, direct.port, direct.conn_max_age) == ("10.0.0.9", None, 60)
    locmem, sessions = profile.caches
    assert locmem.is_local_memory and locmem.timeout is None and locmem.location == ()
    assert sessions.timeout == 300.0  # Django's default when TIMEOUT is unset
    assert sessions.location == (
        "rediss://shop:***@cache1:6380/1",
        "redis://cache2:6379/1?password=***",
    )
    assert profile.asgi_application == "shop.asgi.application"


@pytest.mark.parametrize("module", ["healthy_behind_pgbouncer", "every_problem"])
def test_no_secret_in_the_json(module: str) -> None:
    out = _raw(module)
    json.loads(out)  # stdout is exactly one JSON document, even when the settings print
    for leak in LEAKS:
        assert leak not in out
    for key in ("SECRET_KEY", "PASSWORD", 'password"', "passfile", "sslpassword", "service", "kwargs"):
        assert key not in out


def test_module_that_fails_to_import_is_one_line() -> None:
    with pytest.raises(InventoryError) as err:
        load_profile("fails_to_import", str(FIXTURES))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(
        "inventory: --django-settings: cannot import settings module 'fails_to_import': "
        "ModuleNotFoundError: No module named 'toolkit_fixture_module_that_does_not_exist'; "
        "check the module name, PYTHONPATH"
    )


def test_probe_exits_65_with_one_stderr_line() -> None:
    done = subprocess.run(
        [sys.executable, str(PROBE), "fails_to_import"],
        env={"PYTHONPATH": str(FIXTURES), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 65
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1
    assert "'fails_to_import'" in done.stderr and "ModuleNotFoundError" in done.stderr


def test_unknown_module_names_it() -> None:
    with pytest.raises(InventoryError, match=r"cannot import settings module 'no_such_settings'"):
        load_profile("no_such_settings", str(FIXTURES))


def test_missing_interpreter() -> None:
    with pytest.raises(InventoryError) as err:
        load_profile("healthy_behind_pgbouncer", str(FIXTURES), python="/nonexistent/bin/python")
    assert "settings module 'healthy_behind_pgbouncer': cannot run the interpreter" in str(err.value)
    assert "pass the app's Python" in str(err.value)


def test_interpreter_without_django(tmp_path: Path) -> None:
    # This interpreter without its site-packages stands in for an app's Python that lacks Django.
    bare = tmp_path / "python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    bare.chmod(0o755)
    with pytest.raises(InventoryError, match=r"cannot import module 'django'.*is this the app's Python"):
        load_profile("healthy_behind_pgbouncer", str(FIXTURES), python=str(bare))


def test_hung_settings_module_times_out() -> None:
    with pytest.raises(InventoryError, match=r"took more than 2 s"):
        load_profile("hangs_on_import", str(FIXTURES), timeout=2)


@pytest.mark.parametrize(
    ("location", "masked"),
    [
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("redis://user:pw@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://pw@h", "redis://***@h"),
        ("unix://:pw@/run/redis.sock?db=2", "unix://:***@/run/redis.sock?db=2"),
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("/var/tmp/django_cache", "/var/tmp/django_cache"),
        ("redis://u:a,b;c#d?e@f/g@h:6379/0", "redis://u:***@h:6379/0"),
        ("redis://u:p%40w%2F%23@h:6379/0", "redis://u:***@h:6379/0"),
        ("redis://h:6379/0?db=1&password=a#b", "redis://h:6379/0?db=1&password=***"),
    ],
)
def test_mask_location(location: str, masked: str) -> None:
    assert django_probe.mask_location(location) == masked


# Settings modules that raise with a secret in the message: the probe's one line (and so doctor's
# error) shows the rest of the message with the secret masked.
@pytest.mark.parametrize(
    ("module", "shown"),
    [
        ("raises_with_dsn", "ValueError: cannot parse DATABASE_URL 'postgresql://shop:***@db1:5432/shop'"),
        ("raises_with_settings_dict", "'PASSWORD': '***'} (conninfo host=db1 password=*** dbname=shop)"),
        ("raises_with_env_secret", "KeyError: 'SHOP_DB_PASSWORD is not valid: ***'"),
    ],
)
def test_raising_settings_module_masks_the_error(module: str, shown: str) -> None:
    secret_env = {"SHOP_DB_PASSWORD": "env-password-must-not-leak"}
    with pytest.raises(InventoryError) as err:
        load_profile(module, str(FIXTURES), extra_env=secret_env)
    message = str(err.value)
    assert f"cannot import settings module {module!r}: " in message
    assert shown in message
    assert "must-not-leak" not in message
    done = subprocess.run(
        [sys.executable, str(PROBE), module],
        env={"PYTHONPATH": str(FIXTURES), "PATH": "/usr/bin:/bin", **secret_env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 65
    assert "must-not-leak" not in done.stderr + done.stdout


def test_hostile_cache_locations_are_masked_whole() -> None:
    profile = load_profile("hostile_cache_locations", str(FIXTURES))
    joined, listed = profile.caches
    assert joined.location == ("redis://:***@r1:6379/0", "redis://app:***@r2:6379/0")
    assert listed.location == (
        "redis://app:***@r3:6379/0",
        "rediss://app:***@r4:6380/1",
        "redis://r5:6379/0?db=1&password=***",
        "redis://***@r6:6379/0",
    )
    assert "must-not-leak" not in _raw("hostile_cache_locations")


def test_probe_imports_only_stdlib_and_django() -> None:
    tree = ast.parse(PROBE.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top == "django", name

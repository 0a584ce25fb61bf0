"""Role inputs that land in files: a table of hostile values per variable, and good values that pass."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from toolkit.domain.errors import InventoryError
from toolkit.domain.redis_acl import acl_rules
from toolkit.domain.role_inputs import ROLE_INPUTS, ROLE_VARIABLES, SECRETS, check_host_inputs
from toolkit.domain.validate import DEFERRED, Invalid, deferred

ROLES = Path(__file__).resolve().parents[2] / "roles"
SECRET = "S3cr3t-value-never-shown"


def _defaults() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role in ("pgbouncer", "redis", "postgresql_lab", "django_demo"):
        out.update(yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text()))
    # Templates in the defaults, as the play renders them for the lab.
    return {**out, "django_demo_pgbouncer_host": "lab", "django_demo_redis_host": "lab"}


DEFAULTS = _defaults()
CONTROLS = ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"]
TEXT_VARIABLES = [
    "pgbouncer_server_reset_query",
    "pgbouncer_listen_addr",
    "pgbouncer_auth_query",
    "pgbouncer_instance",
    "pgbouncer_client_tls_key_file",
    "pgbouncer_apt_repository",
    "redis_listen_addr",
    "redis_maxmemory_policy",
    "redis_app_command_rules",
    "redis_app_key_prefix",
    "redis_app_user",
    "redis_loglevel",
    "redis_broker_save",
    "postgresql_lab_listen_addresses",
    "postgresql_lab_cluster",
    "django_demo_bind",
    "django_demo_root",
    "django_demo_user",
]


def _check(**values: Any) -> None:
    check_host_inputs("h1", {**DEFAULTS, **values})


def _error(**values: Any) -> str:
    with pytest.raises(InventoryError) as err:
        _check(**values)
    return str(err.value)


def test_every_default_of_every_role_passes() -> None:
    _check()
    assert set(DEFAULTS) - {"django_demo_pgbouncer_host", "django_demo_redis_host"} <= set(ROLE_INPUTS)


def test_every_role_default_has_a_validator() -> None:
    for role in ("pgbouncer", "redis", "postgresql_lab", "django_demo"):
        defaults = yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())
        assert set(defaults) <= set(ROLE_VARIABLES[role]), role


@pytest.mark.parametrize("variable", TEXT_VARIABLES)
@pytest.mark.parametrize("control", CONTROLS)
def test_a_control_character_anywhere_is_refused(variable: str, control: str) -> None:
    good = DEFAULTS[variable] if DEFAULTS.get(variable) else "x"
    for bad in (f"{good}{control}", f"{good}{control}auth_type = trust", f"{control}{good}"):
        message = _error(**{variable: bad})
        assert f"inventory: {variable} (host h1): " in message
        assert "\n" not in message and "\r" not in message and "\u2028" not in message


HOSTILE: list[tuple[str, Any, str]] = [
    ("pgbouncer_server_reset_query", "DISCARD ALL\nauth_type = trust", "control character U+000A"),
    ("pgbouncer_listen_addr", "127.0.0.1\nlisten_addr = *", "control character U+000A"),
    ("pgbouncer_listen_addr", "127.0.0.1,*", "has the wildcard '*'"),
    ("pgbouncer_listen_addr", "0.0.0.0 ", "has the wildcard '0.0.0.0'"),
    ("pgbouncer_listen_addr", "127.0.0.1, ::", "has the wildcard '::'"),
    ("pgbouncer_listen_addr", "::ffff:0.0.0.0", "has the wildcard"),
    ("pgbouncer_listen_addr", "0", "must be an IP address or a host name"),
    ("pgbouncer_listen_addr", "0x7f.1", "must be an IP address or a host name"),
    ("pgbouncer_listen_addr", "[::]", "must be an IP address or a host name"),
    ("pgbouncer_listen_addr", "127.0.0.1,,::1", "has an empty entry"),
    ("pgbouncer_listen_port", float("nan"), "must be an integer from 1 to 65535"),
    ("pgbouncer_listen_port", float("inf"), "must be an integer from 1 to 65535"),
    ("pgbouncer_listen_port", "\u0663", "must be an integer from 1 to 65535 (ASCII digits)"),
    ("pgbouncer_listen_port", "6432\n", "must be an integer"),
    ("pgbouncer_listen_port", True, "must be an integer"),
    ("pgbouncer_listen_port", 0, "must be at least 1"),
    ("pgbouncer_listen_port", 70000, "must be at most 65535"),
    ("pgbouncer_query_timeout", 2**40, "must be at most 2147483647"),
    ("pgbouncer_query_timeout", 1e400, "must be an integer"),
    ("pgbouncer_query_timeout", "1e400", "must be an integer"),
    ("pgbouncer_query_timeout", -1, "must be at least 0"),
    ("pgbouncer_pkt_buf", False, "must be an integer"),
    ("pgbouncer_max_prepared_statements", "\u0663\u0663", "must be an integer"),
    (
        "pgbouncer_pool_mode",
        "transaction\nauth_type = trust",
        "must be one of session, transaction, statement",
    ),
    ("pgbouncer_client_tls_sslmode", "disable ", "must be one of disable"),
    ("pgbouncer_instance", "pgbouncer\n", "control character"),
    ("pgbouncer_instance", "main-2", "not ending in '-<digits>'"),
    ("pgbouncer_instance", "../etc", "lower-case letters"),
    ("pgbouncer_client_tls_key_file", "/etc/ssl/../shadow", "empty or an absolute path"),
    ("pgbouncer_client_tls_key_file", "key.pem", "empty or an absolute path"),
    ("pgbouncer_databases", [{"name": "app", "dbname": "app\nadmin_users = app"}], "entry 1 dbname"),
    ("pgbouncer_databases", [{"name": "app", "host": "db; rm -rf /"}], "entry 1 host must be an IP"),
    ("pgbouncer_databases", [{"name": "app", "port": "5432\n"}], "entry 1 port must be an integer"),
    ("pgbouncer_databases", [{"name": "pgbouncer"}], "not 'pgbouncer'"),
    ("pgbouncer_databases", [{"name": 'app" = host=evil'}], "entry 1 name must be a name"),
    ("pgbouncer_databases", [{"name": "app", "pool_size": 1000}], "unknown key(s) pool_size"),
    ("pgbouncer_auth_users", [{"name": 'app" "md5x'}], "entry 1 name must be a name"),
    (
        "pgbouncer_auth_users",
        [{"name": "app", "scram_verifier": 'SCRAM-SHA-256$4096:a$b:c"\n'}],
        "scram_verifier",
    ),
    ("pgbouncer_ignore_startup_parameters", ["extra_float_digits\nauth_type = trust"], "entry 1 contains"),
    ("pgbouncer_allow_listen_any", "false", "must be true or false"),
    ("pgbouncer_apt_key_url", "http://example.org/key", "empty or an https:// URL"),
    ("redis_maxmemory_policy", "allkeys-lru\nloadmodule /tmp/evil.so", "must be one of noeviction"),
    ("redis_maxmemory_policy", "allkeys-lru loadmodule", "must be one of noeviction"),
    ("redis_listen_addr", "127.0.0.1 *", "has the wildcard '*'"),
    ("redis_listen_addr", "127.0.0.1 -::*", "has the wildcard '-::*'"),
    ("redis_listen_addr", "127.0.0.1 0.0.0.0", "has the wildcard '0.0.0.0'"),
    ("redis_listen_addr", "127.0.0.1\nprotected-mode no", "control character"),
    ("redis_app_command_rules", "+@read\nuser evil on nopass ~* +@all", "control character U+000A"),
    ("redis_app_command_rules", "+@read nopass", "may not contain nopass"),
    ("redis_app_command_rules", "reset +@all", "outside the ACL grammar"),
    ("redis_app_command_rules", "+@read resetpass", "outside the ACL grammar"),
    ("redis_app_command_rules", "allkeys +@all", "command rules only"),
    ("redis_app_command_rules", "+@all", "may not grant @all"),
    ("redis_app_command_rules", "allcommands", "may not grant @all"),
    ("redis_app_command_rules", "+@read +@admin", "may not grant"),
    ("redis_app_command_rules", "+@read +config|set", "may not grant"),
    ("redis_app_command_rules", "+@read +ACL", "may not grant"),
    ("redis_app_command_rules", "+@read +module", "may not grant"),
    ("redis_app_command_rules", "+@read +client", "may not grant"),
    ("redis_app_command_rules", "+@read ~*", "command rules only"),
    ("redis_app_command_rules", "+@read >pw", "command rules only"),
    ("redis_app_command_rules", "+@read user evil", "outside the ACL grammar"),
    ("redis_app_command_rules", "+@read (~* +@all)", "outside the ACL grammar"),
    ("redis_app_command_rules", "+@read  +@write", "single spaces"),
    ("redis_app_command_rules", "+@nosuch", "unknown category"),
    ("redis_app_key_prefix", "cache:* ~*", "literal key prefix"),
    ("redis_app_channels", ["jobs &*"], "entry 1 must be a channel pattern"),
    ("redis_app_user", "default", "none of them 'default'"),
    ("redis_ops_user", "app", "three distinct names"),
    ("redis_broker_save", "3600 1\nsave 1 1", "control character"),
    ("redis_broker_save", "3600", "pairs"),
    ("redis_broker_appendfsync", False, "must be one of always, everysec, no"),
    ("redis_nofile", 2**31, "must be at most"),
    ("redis_memory_share", float("nan"), "must be a finite number"),
    ("redis_memory_share", "0.5\n", "must be a finite number"),
    ("redis_memory_share", 2, "must be in (0.0, 1.0]"),
    ("postgresql_lab_listen_addresses", "127.0.0.1,*", "has the wildcard '*'"),
    ("postgresql_lab_listen_addresses", "127.0.0.1' port = 1 '", "must be an IP address or a host name"),
    ("postgresql_lab_hba_networks", ["0.0.0.0/0\nhost all all 0.0.0.0/0 trust"], "control character"),
    ("postgresql_lab_hba_networks", ["all"], "CIDR form"),
    ("postgresql_lab_hba_networks", ["10.0.0.1/8"], "host bits zero"),
    ("postgresql_lab_databases", [{"name": "app; DROP", "owner": "app"}], "entry 1 name"),
    ("postgresql_lab_users", [{"name": "pg_monitor", "password": "x" * 20}], "not pg_"),
    ("postgresql_lab_version", "15\n", "must be an integer"),
    ("database_max_connections", 300000, "must be at most 262143"),
    ("database_hold_factor", float("inf"), "must be a finite number"),
    ("django_demo_bind", "127.0.0.1\n", "control character"),
    ("django_demo_bind", "0.0.0.0", "not a loopback address"),
    ("django_demo_bind", "10.0.0.5", "not a loopback address"),
    ("django_demo_root", "/opt/demo app", "an absolute path"),
    ("django_demo_user", "root\nExecStartPre=/bin/sh", "control character"),
    ("django_demo_port", "8001 --reload", "must be an integer"),
    ("django_server", "asgi\n", "must be one of wsgi_sync"),
    ("ansible_host", "127.0.0.1\n", "control character"),
]


@pytest.mark.parametrize(("variable", "value", "why"), HOSTILE, ids=[f"{v}={x!r}" for v, x, _ in HOSTILE])
def test_hostile_values_are_refused_naming_variable_host_and_rule(
    variable: str, value: Any, why: str
) -> None:
    message = _error(**{variable: value})
    prefix = f"inventory: {variable} (host h1): "
    assert message.startswith(prefix) or "three distinct names" in message, message
    assert why in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("pgbouncer_scram_salt_seed", f"{SECRET}\n"),
        ("redis_app_password", f"{SECRET}\r\nuser evil on nopass"),
        ("redis_admin_password", f"{SECRET}\u2028"),
        ("django_demo_secret_key", f"\x7f{SECRET}"),
        ("postgresql_lab_monitoring_password", f"{SECRET}\x85"),
        ("pgbouncer_auth_users", [{"name": "app", "password": f"{SECRET}\n"}]),
        ("pgbouncer_auth_users", [{"password": SECRET}]),
        ("pgbouncer_auth_users", [{"nmae": "app", "password": SECRET}]),
        ("pgbouncer_auth_users", [SECRET]),
        ("pgbouncer_admin_users", [{"name": "admin", "password": 12 * [SECRET]}]),
        ("pgbouncer_auth_query_user", {"name": "auth", "password": f"{SECRET}\n"}),
        ("pgbouncer_auth_users", [{"name": "app", "scram_verifier": f"SCRAM-SHA-256$4096:{SECRET}"}]),
        ("postgresql_lab_users", [{"name": "app", "password": f"{SECRET}\x00"}]),
    ],
)
def test_a_secret_is_never_in_the_message(variable: str, value: Any) -> None:
    message = _error(**{variable: value})
    assert f"{variable} (host h1)" in message
    assert SECRET not in message


def test_secret_variables_are_known() -> None:
    assert {"redis_app_password", "pgbouncer_scram_salt_seed", "django_demo_secret_key"} <= SECRETS


GOOD: list[tuple[str, Any]] = [
    ("pgbouncer_listen_addr", "127.0.0.1, ::1"),
    ("pgbouncer_listen_addr", "pgb1.example.internal"),
    ("pgbouncer_listen_addr", "localhost"),
    ("pgbouncer_listen_port", "6432"),
    ("pgbouncer_server_reset_query", ""),
    ("pgbouncer_server_reset_query", "DISCARD ALL; SET search_path = public"),
    ("pgbouncer_databases", [{"name": "app", "dbname": "app_prod", "host": "10.0.0.5", "port": 5433}]),
    ("pgbouncer_databases", [{"name": "app", "host": "/var/run/postgresql"}]),
    ("pgbouncer_auth_users", [{"name": "app", "scram_verifier": "SCRAM-SHA-256$4096:c2FsdA==$c3Q=:c2s="}]),
    ("pgbouncer_auth_users", [{"name": "app", "password": 'p@ss "quoted" {{ not a template }}'}]),
    ("pgbouncer_max_prepared_statements", 200),
    (
        "pgbouncer_apt_repository",
        "deb [signed-by=/etc/apt/keyrings/pgdg.asc] https://apt.postgresql.org/x main",
    ),
    ("redis_listen_addr", "127.0.0.1 -::1"),
    ("redis_app_command_rules", "+@read +@write +@connection +@transaction -@dangerous"),
    ("redis_app_command_rules", "+@read -@all +get +set +client|setname -keys"),
    ("redis_app_channels", ["celery*", "jobs:{a}"]),
    ("redis_broker_save", "3600 1 300 100 60 10000"),
    ("redis_maxmemory_policy", "allkeys-lfu"),
    ("postgresql_lab_hba_networks", ["127.0.0.1/32", "::1/128", "10.0.0.0/8"]),
    ("django_demo_bind", "::1"),
    ("django_workers", 0),
]


@pytest.mark.parametrize(("variable", "value"), GOOD)
def test_good_values_pass(variable: str, value: Any) -> None:
    _check(**{variable: value})


def test_a_wildcard_passes_with_its_flag() -> None:
    _check(pgbouncer_listen_addr="127.0.0.1,*", pgbouncer_allow_listen_any=True)
    _check(redis_listen_addr="0.0.0.0", redis_allow_wildcard_bind=True)
    _check(postgresql_lab_listen_addresses="*", postgresql_lab_allow_wildcard_listen=True)
    _check(django_demo_bind="0.0.0.0", django_demo_allow_public_bind=True)


def test_the_acl_grammar_reads_every_kind_and_nopass_only_with_its_flag() -> None:
    rules = (
        "on >pw #" + "a" * 64 + " ~cache:* %R~ro:* &chan allkeys resetchannels +@read -@all +get|x nocommands"
    )
    kinds = [kind for kind, _ in acl_rules(rules)]
    assert kinds == [
        "switch", "password", "hash", "keys", "keys", "channels", "keys", "channels",
        "category", "category", "command", "command",
    ]  # fmt: skip
    with pytest.raises(Invalid, match="nopass"):
        acl_rules("on nopass")
    assert acl_rules("on nopass", allow_nopass=True)[1] == ("nopass", "nopass")


def test_templates_are_left_to_the_play() -> None:
    assert deferred({"a": ["{{ x }}", "y"]}) == {"a": [DEFERRED, "y"]}
    check_host_inputs(
        "h1", {"redis_app_password": "{{ vault_pw }}", "pgbouncer_listen_port": "{{ p }}"}, rendered=False
    )
    with pytest.raises(InventoryError, match="pgbouncer_listen_port"):
        check_host_inputs("h1", {"pgbouncer_listen_port": "{{ p }}"})


def test_a_hostile_inventory_host_name_is_refused() -> None:
    with pytest.raises(
        InventoryError, match=r"inventory_hostname \(host app-1 x\): must be an inventory host"
    ):
        check_host_inputs("app-1 x", {})
    check_host_inputs("10.0.0.5", {})
    check_host_inputs("fe80::1", {})

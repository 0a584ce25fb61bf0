# Generated from toolkit/domain/role_inputs.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/role_inputs.py and run `python scripts/generate_plugin_utils.py`.
"""The one table of role inputs: every variable a role writes into a file, with its validator.

Read from every template under ``roles/*/templates`` and every ``defaults/main.yml`` (pgbouncer.ini
and its restart file, the auth_file, the init scripts, /etc/default files and units, redis.conf,
runtime.conf, the ACL file, postgresql and pg_hba conf of the lab, the demo's node config and
launcher), plus the sizing variables the plan reads. :func:`check_host_inputs` applies it to one
host's variables; the roles call it through the filter ``toolkit_check_inputs``, the CLI through
:func:`toolkit.domain.inventory.topology_from_inventory`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection, Mapping
from typing import Any

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import InventoryError
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.redis_acl import app_command_rules
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.validate import (
    DEFERRED,
    INT32_MAX,
    PG_MAX_BACKENDS,
    Check,
    Invalid,
    address,
    address_list,
    boolean,
    deferred,
    integer,
    list_of,
    mapping_of,
    matching,
    number,
    one_of,
    optional_secret,
    port,
    record,
    records,
    run,
    secret,
    text_line,
    wildcards,
)

# Names: conservative, anchored (fullmatch), no quote, space or control character.
PGBOUNCER_NAME = matching(
    r"(?!pgbouncer\Z)[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}",
    "a name of letters, digits, '_', '.', '-' (at most 63, not 'pgbouncer', the admin console)",
)
_PG_NAME = r"[A-Za-z_][A-Za-z0-9_.-]{0,62}"
PG_NAME = matching(_PG_NAME, "a name of letters, digits, '_', '.', '-' (at most 63)")
PG_ROLE = matching(
    r"(?!pg_)[a-z_][a-z0-9_]{0,62}", "lower-case letters, digits and '_' (at most 63, not pg_*)"
)
_INVENTORY_HOST = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}"
INVENTORY_HOST = matching(_INVENTORY_HOST, "an inventory host name (letters, digits, '_', '.', '-')")
OPTIONAL_HOST = matching(_INVENTORY_HOST, "empty or an inventory host name", empty=True)
INSTANCE = matching(
    r"(?!.*-[0-9]+\Z)[a-z][a-z0-9_-]{0,62}",
    "lower-case letters, digits, '-' and '_', starting with a letter, not ending in '-<digits>'",
)
SERVICE = matching(r"[a-z0-9][a-z0-9_-]{0,63}", "lower-case letters, digits, '-' and '_'")
UNIX_USER = matching(r"[a-z_][a-z0-9_-]{0,31}", "a system user name (lower-case letters, digits, '_', '-')")
REDIS_USER = matching(r"[A-Za-z0-9_.-]{1,64}", "letters, digits, '_', '.', '-' (at most 64)")
PACKAGE = matching(r"[a-z0-9][a-z0-9+.-]{1,100}", "a Debian package name")
VERSION = matching(r"[0-9]{1,4}(\.[0-9]{1,4}){0,3}", "a version such as 1.25.2", empty=True)
_PATH = r"(?!.*/\.\.?(/|\Z))(/[A-Za-z0-9_.+@-]+)+"
PATH = matching(_PATH, "an absolute path of letters, digits, '_', '.', '+', '@', '-'")
OPTIONAL_PATH = matching(_PATH, "empty or an absolute path", empty=True)
_SCRAM = matching(
    r"SCRAM-SHA-256\$[0-9]{1,7}:[A-Za-z0-9+/=]{1,200}\$[A-Za-z0-9+/=]{1,200}:[A-Za-z0-9+/=]{1,200}",
    "SCRAM-SHA-256$<iterations>:<salt>$<stored key>:<server key>",
)


def scram_verifier(value: Any) -> None:
    """A SCRAM-SHA-256 verifier; as sensitive as a password hash, so never shown."""
    try:
        _SCRAM(value)
    except Invalid as exc:
        raise Invalid(exc.why, None, False) from None


SSLMODE = one_of("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
REDIS_PREFIX = matching(
    r"[A-Za-z0-9_.:{}/@-]{1,128}", "a literal key prefix without spaces or glob characters"
)
REDIS_CHANNEL = matching(
    r"[A-Za-z0-9_.:{}/@*?-]{1,128}", "a channel pattern of letters, digits and _.:{}/@*?-"
)
REDIS_SAVE = matching(
    r"[0-9]{1,10} [0-9]{1,10}( [0-9]{1,10} [0-9]{1,10})*", "pairs '<seconds> <changes>'", empty=True
)
COUNT = integer(0, INT32_MAX)
SECONDS = integer(0, INT32_MAX)


def _hba_network(value: Any) -> None:
    if value is DEFERRED:
        return
    text_line(value)
    if not isinstance(value, str) or "/" not in value:
        raise Invalid("must be a network in CIDR form, such as 127.0.0.1/32", value)
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        raise Invalid("must be a network in CIDR form (host bits zero), such as 10.0.0.0/24", value) from None


def _database_host(value: Any) -> None:
    """PgBouncer's host=: an address, a host name, or a unix socket directory."""
    if isinstance(value, str) and value.startswith("/"):
        PATH(value)
    else:
        address(value)


_USER = {"name": PG_NAME, "password": secret}
ROLE_VARIABLES: dict[str, dict[str, Check]] = {
    "pgbouncer": {
        "database_host": _database_host,
        "database_port": port,
        "pgbouncer_instance": INSTANCE,
        "pgbouncer_processes": integer(1, 1024),
        "pgbouncer_pool_mode": one_of("session", "transaction", "statement"),
        "pgbouncer_databases": records(
            {"name": PGBOUNCER_NAME, "dbname": PG_NAME, "host": _database_host, "port": port}, ("name",)
        ),
        "pgbouncer_auth_users": records({**_USER, "scram_verifier": scram_verifier}, ("name",)),
        "pgbouncer_admin_users": records(_USER, ("name", "password")),
        "pgbouncer_stats_users": records(_USER, ("name", "password"), empty=True),
        "pgbouncer_listen_addr": address_list(","),
        "pgbouncer_allow_listen_any": boolean,
        "pgbouncer_listen_port": port,
        "pgbouncer_failover_headroom": integer(0, 1024),
        "pgbouncer_admin_slots": COUNT,
        "pgbouncer_default_pool_size": integer(1, INT32_MAX),
        "pgbouncer_min_pool_size": COUNT,
        "pgbouncer_reserve_pool_size": COUNT,
        "pgbouncer_max_client_conn": integer(1, INT32_MAX),
        "pgbouncer_package_name": PACKAGE,
        "pgbouncer_package_state": one_of("present", "latest"),
        "pgbouncer_apt_repository": matching(
            r"deb(-src)? [ -~]{1,500}", "empty or one 'deb ...' line", empty=True
        ),
        "pgbouncer_apt_key_url": matching(r"https://[!-~]{1,500}", "empty or an https:// URL", empty=True),
        "pgbouncer_apt_key_path": PATH,
        "pgbouncer_minimum_version": VERSION,
        "pgbouncer_security_floor": VERSION,
        "pgbouncer_client_package_name": PACKAGE,
        "pgbouncer_auth_mode": one_of("userlist", "auth_query"),
        "pgbouncer_scram_salt_seed": secret,
        "pgbouncer_auth_query_user": record({"name": PG_NAME, "password": optional_secret}, ("name",)),
        "pgbouncer_auth_query": matching(r"[ -~]{1,1000}", "one line of SQL (printable ASCII)"),
        "pgbouncer_auth_dbname": matching(_PG_NAME, "empty or a database name", empty=True),
        "pgbouncer_client_tls_sslmode": SSLMODE,
        "pgbouncer_client_tls_key_file": OPTIONAL_PATH,
        "pgbouncer_client_tls_cert_file": OPTIONAL_PATH,
        "pgbouncer_client_tls_ca_file": OPTIONAL_PATH,
        "pgbouncer_server_tls_sslmode": SSLMODE,
        "pgbouncer_server_tls_ca_file": OPTIONAL_PATH,
        **{
            f"pgbouncer_{name}": SECONDS
            for name in [
                "query_wait_timeout",
                "query_timeout",
                "idle_transaction_timeout",
                "client_idle_timeout",
                "client_login_timeout",
                "server_idle_timeout",
                "server_lifetime",
                "server_connect_timeout",
                "server_login_retry",
                "reserve_pool_timeout",
                "tcp_keepidle",
                "tcp_keepintvl",
                "tcp_keepcnt",
                "stats_period",
            ]
        },
        "pgbouncer_tcp_keepalive": boolean,
        "pgbouncer_server_reset_query": text_line,
        "pgbouncer_ignore_startup_parameters": list_of(
            matching(r"[a-z_][a-z0-9_]{0,62}", "a parameter name (lower-case letters, digits, '_')"),
            empty=True,
        ),
        "pgbouncer_max_prepared_statements": integer(0, INT32_MAX, empty=True),
        "pgbouncer_log_connections": boolean,
        "pgbouncer_log_disconnections": boolean,
        "pgbouncer_log_pooler_errors": boolean,
        "pgbouncer_pkt_buf": integer(512, INT32_MAX),
    },
    "redis": {
        "redis_instance": SERVICE,
        "redis_package_name": PACKAGE,
        "redis_package_state": one_of("present", "latest"),
        "redis_listen_addr": address_list(" ", optional_prefix=True),
        "redis_allow_wildcard_bind": boolean,
        "redis_listen_port": port,
        "redis_app_user": REDIS_USER,
        "redis_app_password": secret,
        "redis_app_key_prefix": REDIS_PREFIX,
        "redis_app_command_rules": app_command_rules,
        "redis_app_channels": list_of(REDIS_CHANNEL, empty=True),
        "redis_ops_user": REDIS_USER,
        "redis_ops_password": secret,
        "redis_admin_user": REDIS_USER,
        "redis_admin_password": secret,
        "redis_timeout": SECONDS,
        "redis_tcp_keepalive": SECONDS,
        "redis_loglevel": one_of("debug", "verbose", "notice", "warning"),
        "redis_broker_save": REDIS_SAVE,
        "redis_broker_appendfsync": one_of("always", "everysec", "no"),
        # Linux's largest fs.nr_open.
        "redis_nofile": integer(64, 1_073_741_816),
        "redis_profile": one_of("cache", "broker"),
        "redis_maxmemory_mb": integer(1, INT32_MAX),
        "redis_memory_share": number(0.0, 1.0),
        "redis_host_memory_mb": integer(1, INT32_MAX),
        "redis_maxmemory_policy": one_of(
            "noeviction",
            "allkeys-lru",
            "allkeys-lfu",
            "allkeys-random",
            "volatile-lru",
            "volatile-lfu",
            "volatile-random",
            "volatile-ttl",
        ),
        "redis_ops_slots": COUNT,
    },
    "postgresql_lab": {
        "database_max_connections": integer(1, PG_MAX_BACKENDS),
        "database_superuser_reserved_connections": integer(0, PG_MAX_BACKENDS),
        "database_bypass_connections": mapping_of(PG_NAME, integer(0, PG_MAX_BACKENDS)),
        "postgresql_lab_version": integer(10, 99),
        "postgresql_lab_cluster": SERVICE,
        "postgresql_lab_port": port,
        "postgresql_lab_listen_addresses": address_list(","),
        "postgresql_lab_allow_wildcard_listen": boolean,
        "postgresql_lab_hba_networks": list_of(_hba_network),
        "postgresql_lab_hba_app_networks": list_of(_hba_network, empty=True),
        "postgresql_lab_idle_in_transaction_session_timeout": integer(0, INT32_MAX),
        "postgresql_lab_users": records({"name": PG_ROLE, "password": secret}, ("name", "password")),
        "postgresql_lab_databases": records({"name": PG_ROLE, "owner": PG_ROLE}, ("name", "owner")),
        "postgresql_lab_monitoring_user": PG_ROLE,
        "postgresql_lab_monitoring_password": secret,
        "postgresql_lab_auth_query": boolean,
        "postgresql_lab_auth_user": PG_ROLE,
    },
    "django_demo": {
        "django_server": one_of("wsgi_sync", "wsgi_gthread", "asgi"),
        "django_workers": COUNT,
        "django_threads": integer(1, INT32_MAX),
        "django_demo_root": PATH,
        "django_demo_user": UNIX_USER,
        "django_demo_python": PATH,
        "django_demo_port": port,
        "django_demo_bind": address,
        "django_demo_allow_public_bind": boolean,
        "django_demo_pgbouncer_host": OPTIONAL_HOST,
        "django_demo_redis_host": OPTIONAL_HOST,
        "django_demo_cache_timeout": SECONDS,
        "django_demo_secret_key": secret,
        "django_demo_seed_authors": COUNT,
        "django_demo_seed_books": COUNT,
        "django_demo_seed_tags": COUNT,
        "django_demo_load_generator_package": PACKAGE,
        "django_demo_pip_extra_args": matching(
            r"[A-Za-z0-9=/_.:+ -]{0,500}", "pip options (letters, digits, '=/_.:+-')", empty=True
        ),
        "django_demo_migrate_direct": boolean,
    },
    # Read by the plan (docs/inventory.md), not by one role.
    "plan": {
        "ansible_host": address,
        "database_reserved_connections": integer(0, PG_MAX_BACKENDS),
        "database_cores": integer(1, INT32_MAX),
        "database_spindles": COUNT,
        "database_hold_factor": number(0.0, 1000.0),
        "database_cpu_share": number(0.0, 1.0),
        "django_celery_concurrency": COUNT,
        "django_extra_clients": COUNT,
        "django_pgbouncer_hosts": list_of(INVENTORY_HOST),
        "django_redis_hosts": list_of(INVENTORY_HOST),
    },
}
# variable -> validator, every role together.
ROLE_INPUTS: dict[str, Check] = {k: v for checks in ROLE_VARIABLES.values() for k, v in checks.items()}
SECRETS = frozenset(k for k in ROLE_INPUTS if k.endswith(("_password", "_seed", "_secret_key")))
# The plan reads these and treats null as unset.
NULLABLE = frozenset(
    [
        "pgbouncer_default_pool_size",
        "pgbouncer_min_pool_size",
        "pgbouncer_reserve_pool_size",
        "pgbouncer_max_client_conn",
        "redis_maxmemory_mb",
        "redis_host_memory_mb",
        "redis_maxmemory_policy",
    ]
)

# Address lists whose wildcard needs a flag: variable, separator, flag.
_WILDCARD_GUARDS = (
    ("pgbouncer_listen_addr", ",", "pgbouncer_allow_listen_any"),
    ("redis_listen_addr", " ", "redis_allow_wildcard_bind"),
    ("postgresql_lab_listen_addresses", ",", "postgresql_lab_allow_wildcard_listen"),
)


def check_host_inputs(
    host: str, values: Mapping[str, Any], *, rendered: bool = True, nullable: Collection[str] = NULLABLE
) -> None:
    """Raise InventoryError for the first role input of ``host`` that breaks its rule.

    ``rendered`` is False for ``ansible-inventory --list`` output: a value still written as a
    template is left to the play, which checks it rendered. A null in ``nullable`` means unset.
    """
    if not _is_ip(host):
        run("inventory_hostname", host, INVENTORY_HOST, host)
    vals = dict(values) if rendered else {k: deferred(v) for k, v in values.items()}
    for name, check in ROLE_INPUTS.items():
        if name in vals and not (vals[name] is None and name in nullable):
            run(name, host, check, vals[name], is_secret=name in SECRETS)
    _guards(host, vals)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _guards(host: str, vals: Mapping[str, Any]) -> None:
    """Rules across variables: wildcards need their flag, Redis users are distinct."""
    for variable, separator, flag in _WILDCARD_GUARDS:
        found = wildcards(vals.get(variable), separator)
        if found and vals.get(flag) is not True:
            raise InventoryError(
                variable,
                host,
                f"has the wildcard {found[0]!r}, which listens on every interface: give explicit addresses, "
                f"or set {flag}: true if that is intended",
            )
    bind = vals.get("django_demo_bind")
    if (
        isinstance(bind, str)
        and vals.get("django_demo_allow_public_bind") is not True
        and not _loopback(bind)
    ):
        raise InventoryError(
            "django_demo_bind",
            host,
            f"is {bind!r}, not a loopback address: bind to 127.0.0.1 or ::1, "
            "or set django_demo_allow_public_bind: true",
        )
    users = [vals.get(k) for k in ("redis_app_user", "redis_ops_user", "redis_admin_user")]
    named = [u for u in users if isinstance(u, str)]
    if "default" in named or len(set(named)) != len(named):
        raise InventoryError(
            "redis_app_user",
            host,
            f"redis_app_user, redis_ops_user and redis_admin_user are {', '.join(map(repr, named))}: "
            "use three distinct names, none of them 'default' (the default user is switched off)",
        )


def _loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False

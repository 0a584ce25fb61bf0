"""db1 emulates a database the toolkit does not own (docs/managed-databases.md).

The postgresql_lab role provisions it with the SQL shipped for a DBA (roles/pgbouncer/files/sql) and
sets each password with ALTER ROLE, so PostgreSQL picks the SCRAM salt. PgBouncer (1.18 on pgb1, 1.24
with two processes on pgb2) finds the verifiers through auth_query: pgbouncer.get_auth, run as
pgbouncer_auth. These tests log in through both hosts, expire a role and see it refused, check who
may run get_auth, and that the stored verifier's salt is one the toolkit never computed.
"""

from __future__ import annotations

import base64
import secrets
import shlex
import subprocess
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from tests.integration.conftest import (
    DB_HOST,
    PGBOUNCER_HOSTS,
    ROOT,
    SSH_CONFIG,
    address,
    app_connection,
    lab_secret,
    ssh,
    ssh_ok,
)
from toolkit.domain.scram import derive_salt, verifier_from_salt

SQL_DIR = ROOT / "roles" / "pgbouncer" / "files" / "sql"
PROBE = "toolkit_probe_expiry"
# Enough logins per host that pgb2's two so_reuseport processes each see some (the kernel spreads them).
LOGINS_PER_HOST = 6
# 1.18 answers "no such user" when auth_query returns no row; 1.24 fails the password exchange.
REFUSED = r"no such user|password authentication failed|SASL authentication failed"


def superuser_sql(sql: str, dbname: str = "app") -> str:
    """Run SQL as postgres on db1 (peer, local socket); the SQL travels on stdin, never in argv."""
    psql = f"sudo -n runuser -u postgres -- psql -X -q -A -t -v ON_ERROR_STOP=1 -d {shlex.quote(dbname)} -f -"
    return ssh_ok(DB_HOST, psql, stdin=sql).strip()


def login(host: str, user: str, password: str) -> psycopg.Connection[Any]:
    """A login through one PgBouncer host; libpq refuses unless PgBouncer authenticates it with SCRAM."""
    return psycopg.connect(
        host=address(host),
        port=6432,
        dbname="app",
        user=user,
        password=password,
        connect_timeout=5,
        require_auth="scram-sha-256",
        prepare_threshold=None,
        application_name="toolkit-tests-managed-db",
    )


def auth_user_psql_on(host: str, sql: str) -> subprocess.CompletedProcess[str]:
    """psql on a lab host as pgbouncer_auth straight to db1; the password reaches it on stdin, never argv."""
    dsn = f"host={address(DB_HOST)} port=5432 dbname=app user=pgbouncer_auth sslmode=disable"
    remote = f"read -r PGPASSWORD; export PGPASSWORD; psql -X -A -t {shlex.quote(dsn)} -c {shlex.quote(sql)}"
    return subprocess.run(
        ["ssh", "-F", str(SSH_CONFIG), host, remote],
        input=lab_secret("pgbouncer_auth_password") + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_the_app_logs_in_with_scram_through_each_pgbouncer_host() -> None:
    for host in PGBOUNCER_HOSTS:
        # The app is not in the auth_file: PgBouncer found its verifier through auth_query.
        userlist = ssh_ok(host, "sudo -n cut -d' ' -f1 /etc/pgbouncer/userlist.txt")
        assert '"app"' not in userlist.split(), host
        assert '"pgbouncer_auth"' in userlist.split(), host
        for _ in range(LOGINS_PER_HOST):
            with login(host, "app", lab_secret("app_password")) as conn:
                row = conn.execute("SELECT current_user::text, host(inet_client_addr())").fetchone()
            assert row == ("app", address(host)), host
        # The conftest helper the other suites use goes the same way.
        with app_connection("toolkit-tests-managed-db", pgbouncer=host) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)


def test_the_stored_verifier_has_a_salt_the_toolkit_never_saw() -> None:
    stored = superuser_sql("SELECT rolpassword FROM pg_authid WHERE rolname = 'app'", "postgres")
    method, params, _keys = stored.split("$")
    iterations, salt_b64 = params.split(":")
    salt = base64.b64decode(salt_b64)
    password = lab_secret("app_password")
    # It proves the app's password (PostgreSQL computed it from the password the DBA step set) ...
    assert method == "SCRAM-SHA-256"
    proves = verifier_from_salt(password, salt, int(iterations)) == stored
    assert proves, "pg_authid's verifier for app does not prove .lab/app_password"
    # ... with a salt the toolkit's old known-salt scheme (HMAC of the lab's seed) would not give.
    seed = (ROOT / ".lab" / "scram_salt_seed").read_text().strip()
    same_salt = salt == derive_salt("app", seed)
    assert not same_salt, "app's salt is the seed-derived one: the toolkit set this password"
    assert len(salt) == 16


@pytest.fixture
def probe_role() -> Iterator[str]:
    """A login role, member of app (so pg_hba admits it from the PgBouncer hosts), dropped afterwards."""
    password = secrets.token_urlsafe(24)
    drop = (
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE usename = '{PROBE}';\n"
        f"DROP ROLE IF EXISTS {PROBE};\n"
    )
    superuser_sql(drop, "postgres")
    superuser_sql(
        f"SET log_statement = 'none';\nCREATE ROLE {PROBE} LOGIN PASSWORD '{password}' IN ROLE app;\n",
        "postgres",
    )
    try:
        yield password
    finally:
        superuser_sql(drop, "postgres")


def test_an_expired_role_is_refused_through_pgbouncer(probe_role: str) -> None:
    count = f"SELECT count(*) FROM pgbouncer.get_auth('{PROBE}')"
    assert superuser_sql(count) == "1"
    # While valid it logs in through every host, leaving server connections in the pools: the case
    # PgBouncer before 1.24.1 got wrong on its own (CVE-2025-2291), reusing them for an expired role.
    for host in PGBOUNCER_HOSTS:
        for _ in range(LOGINS_PER_HOST):
            with login(host, PROBE, probe_role) as conn:
                assert conn.execute("SELECT current_user::text").fetchone() == (PROBE,)
    pooled = superuser_sql(f"SELECT count(*) FROM pg_stat_activity WHERE usename = '{PROBE}'")
    print(f"server connections of {PROBE} pooled before it expired: {pooled}")

    superuser_sql(f"ALTER ROLE {PROBE} VALID UNTIL '2000-01-01 00:00:00+00'", "postgres")
    assert superuser_sql(count) == "0"
    for host in PGBOUNCER_HOSTS:
        for _ in range(LOGINS_PER_HOST):
            with pytest.raises(psycopg.OperationalError, match=REFUSED):
                login(host, PROBE, probe_role).close()


def test_only_the_auth_user_may_run_get_auth() -> None:
    definition = superuser_sql(
        "SELECT p.prosecdef, array_to_string(p.proconfig, ';'),"
        " (SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_roles r"
        "  WHERE r.rolcanlogin AND NOT r.rolsuper AND has_function_privilege(r.oid, p.oid, 'EXECUTE')),"
        " (SELECT string_agg(r.rolname, ',' ORDER BY r.rolname) FROM pg_roles r"
        "  WHERE r.rolcanlogin AND NOT r.rolsuper AND has_schema_privilege(r.oid, p.pronamespace, 'USAGE'))"
        " FROM pg_proc p WHERE p.oid = 'pgbouncer.get_auth(text)'::regprocedure"
    )
    assert definition.split("|") == [
        "t",
        "search_path=pg_catalog, pg_temp",
        "pgbouncer_auth",
        "pgbouncer_auth",
    ]

    # The app, logged in through PgBouncer, is refused.
    with (
        app_connection("toolkit-tests-managed-db") as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema pgbouncer"),
    ):
        conn.execute("SELECT * FROM pgbouncer.get_auth('app')")
    # So is the monitoring role, from the controller.
    with (
        psycopg.connect(
            host=address(DB_HOST),
            port=5432,
            dbname="app",
            user="toolkit_monitor",
            password=lab_secret("monitor_password"),
            connect_timeout=5,
            sslmode="disable",
        ) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="permission denied for schema pgbouncer"),
    ):
        conn.execute("SELECT * FROM pgbouncer.get_auth('app')")


def test_the_auth_user_logs_in_from_the_pgbouncer_hosts_only_and_never_gets_a_superuser() -> None:
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(
            host=address(DB_HOST),
            port=5432,
            dbname="app",
            user="pgbouncer_auth",
            password=lab_secret("pgbouncer_auth_password"),
            connect_timeout=5,
            sslmode="disable",
        ).close()
    for host in PGBOUNCER_HOSTS:
        proc = auth_user_psql_on(
            host,
            "SELECT (SELECT count(*) FROM pgbouncer.get_auth('app')) || ','"
            " || (SELECT count(*) FROM pgbouncer.get_auth('postgres'))",
        )
        # The app's verifier; none for the superuser.
        assert (proc.returncode, proc.stdout.strip()) == (0, "1,0"), (host, proc.stderr)


def test_the_shipped_sql_is_rerunnable_and_refuses_a_role_that_cannot_read_pg_authid() -> None:
    before = superuser_sql("SELECT proacl::text, prosrc FROM pg_proc WHERE proname = 'get_auth'")
    # As the files' headers tell a DBA to run them (the lab's monitoring limit is 2).
    for name, options in (
        ("auth_query.sql", "-d app"),
        ("monitoring.sql", "-d postgres -v monitor_connlimit=2"),
    ):
        psql = f"sudo -n runuser -u postgres -- psql -X -q -1 -v ON_ERROR_STOP=1 {options} -f -"
        ssh_ok(DB_HOST, psql, stdin=(SQL_DIR / name).read_text())
    assert superuser_sql("SELECT proacl::text, prosrc FROM pg_proc WHERE proname = 'get_auth'") == before
    members = superuser_sql(
        "SELECT pg_has_role('toolkit_monitor', 'pg_monitor', 'MEMBER'),"
        " pg_has_role('toolkit_monitor', 'pg_signal_backend', 'MEMBER'), rolsuper, rolcanlogin, rolconnlimit"
        " FROM pg_roles WHERE rolname = 'toolkit_monitor'"
    )
    assert members == "t|t|f|t|2"
    # A role that cannot read pg_authid (as on RDS or Cloud SQL) gets one line saying so, and nothing runs.
    proc = ssh(
        DB_HOST,
        "sudo -n runuser -u postgres -- psql -X -q -1 -v ON_ERROR_STOP=1 -d app"
        " -c 'SET ROLE toolkit_monitor' -f -",
        stdin=(SQL_DIR / "auth_query.sql").read_text(),
    )
    assert proc.returncode == 3
    assert "auth_query.sql: role toolkit_monitor cannot read pg_catalog.pg_authid" in proc.stderr

"""Throwaway PgBouncer processes and the bench database, for bench/pool_sizing.py and its test.

Never touches the lab's own PgBouncer (6432): every process here has its config, auth file, log and
pidfile in a private temporary directory, listens on a free loopback port from 7432 up, runs as the
``postgres`` system user (PgBouncer refuses root) and is stopped by :meth:`BenchLab.close`, which the
context manager calls even on an error or Ctrl-C.

In PostgreSQL, as the superuser (``runuser -u postgres -- psql``, peer authentication): a database
``bench`` and roles of its own (``poolbench_a`` owns the tables, ``poolbench_b`` may use them,
``poolbench_migrate`` only connects, standing in for a migration that bypasses the pooler). Their
passwords are generated on every run, set through psql's standard input, kept in the temporary
directory (mode 0600) and never printed.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolkit.adapters import pgbench
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget

PGBOUNCER = "/usr/sbin/pgbouncer"
RUN_AS = "postgres"
DATABASE = "bench"
OWNER, OTHER, MIGRATE, ADMIN = "poolbench_a", "poolbench_b", "poolbench_migrate", "poolbench_admin"
PG_HOST, PG_PORT = "127.0.0.1", 5432
FIRST_PORT = 7432
LOCK = Path(tempfile.gettempdir()) / "pool-sizing-bench.lock"
# What PostgreSQL answers a login beyond max_connections, and what PgBouncer logs for a failed login.
LOGIN_FAILURE = re.compile(r"remaining connection slots|login failed|too many connections", re.IGNORECASE)


class LabError(RuntimeError):
    """The bench could not set itself up (one line: what failed and what to do)."""


def psql_super(sql: str, dbname: str = "postgres", timeout: float = 120) -> str:
    """Run SQL (from standard input, so no secret shows in the process list) as the postgres superuser."""
    if os.geteuid() != 0:
        raise LabError("the bench needs root (it runs psql as the postgres superuser via runuser)")
    argv = ["runuser", "-u", RUN_AS, "--", "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", dbname]
    proc = subprocess.run(  # noqa: S603 - fixed argv of system tools, SQL on stdin
        argv,
        input=sql,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise LabError(f"psql as postgres on {dbname} failed: {proc.stderr.strip()[:300]}")
    return proc.stdout


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True if nothing listens on host:port (a connection is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


@dataclass
class Bouncer:
    """One PgBouncer process of the bench."""

    name: str
    port: int
    config: Path
    logfile: Path
    proc: subprocess.Popen[bytes]
    admin_password: str = field(repr=False)

    def login_failures(self) -> list[str]:
        """Log lines of server logins PostgreSQL refused (slots exhausted) or that failed otherwise."""
        if not self.logfile.exists():
            return []
        return [
            ln for ln in self.logfile.read_text(errors="replace").splitlines() if LOGIN_FAILURE.search(ln)
        ]

    def admin(self, timeout: float = 5.0) -> AdminConsole:
        """A session on this process's admin console."""
        return AdminConsole(
            AdminTarget("127.0.0.1", self.port, ADMIN, self.admin_password, self.name), timeout
        )

    def stop(self) -> None:
        """SIGTERM (immediate shutdown in 1.18), then SIGKILL if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class BenchLab:
    """The bench's temporary directory, roles, database and PgBouncer processes."""

    def __init__(self) -> None:
        # One bench at a time: each run sets fresh passwords on the shared roles.
        self._lock = LOCK.open("a")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise LabError(f"another pool sizing bench holds {LOCK}: wait for it to finish") from None
        self.dir = Path(tempfile.mkdtemp(prefix="pool-sizing-"))
        self.passwords = {r: secrets.token_hex(16) for r in (OWNER, OTHER, MIGRATE, ADMIN)}
        self.bouncers: list[Bouncer] = []
        self.runs: list[pgbench.Run] = []
        self.cleanups: list[Callable[[], None]] = []  # run first by close(), newest first
        self._next_port = FIRST_PORT
        self._seq = 0
        pgpass = self.dir / "pgpass"
        pgpass.write_text("".join(f"127.0.0.1:*:*:{u}:{p}\n" for u, p in self.passwords.items()))
        pgpass.chmod(0o600)
        userlist = self.dir / "userlist.txt"
        userlist.write_text("".join(f'"{u}" "{p}"\n' for u, p in self.passwords.items()))
        userlist.chmod(0o600)
        if os.geteuid() == 0:
            shutil.chown(self.dir, RUN_AS)
            shutil.chown(userlist, RUN_AS)
        self.dir.chmod(0o700)
        self.env = {**os.environ, "PGPASSFILE": str(pgpass), "PGCONNECT_TIMEOUT": "10"}
        self.env.pop("PGPASSWORD", None)

    def __enter__(self) -> BenchLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every pgbench and PgBouncer this lab started and remove the temporary directory."""
        while self.cleanups:
            try:
                self.cleanups.pop()()
            except Exception as exc:  # the rest of the cleanup must still run
                print(f"bench cleanup: {exc}", file=sys.stderr)
        for run in self.runs:
            run.stop()
        for b in self.bouncers:
            b.stop()
        self.bouncers.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._lock.close()

    # --- PostgreSQL -------------------------------------------------------------------------------

    def endpoint(self, port: int = PG_PORT, user: str = OWNER, dbname: str = DATABASE) -> pgbench.Endpoint:
        """Where pgbench connects (PostgreSQL itself by default, or a bench PgBouncer's port)."""
        return pgbench.Endpoint(PG_HOST, port, user, dbname)

    def prepare(self, scale: int) -> str:
        """Roles with fresh passwords, database ``bench``, pgbench tables at ``scale`` (reused if there)."""
        roles = "".join(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{r}') THEN "
            f"CREATE ROLE {r} LOGIN; END IF; END$$;\n"
            f"ALTER ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{self.passwords[r]}';\n"
            for r in (OWNER, OTHER, MIGRATE)
        )
        psql_super(roles)
        exists = f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"  # noqa: S608 - a constant
        if not psql_super(exists).strip():
            psql_super(f"CREATE DATABASE {DATABASE} OWNER {OWNER}")
        tables = psql_super(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tablename IN "
            "('pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history')",
            DATABASE,
        )
        branches = "0"
        if tables.strip() == "4":
            branches = psql_super("SELECT count(*) FROM pgbench_branches", DATABASE).strip()
        if branches == str(scale):
            note = f"pgbench tables at scale {scale} already in database {DATABASE}: reused"
        else:
            pgbench.initialize(self.endpoint(), scale, self.env)
            note = f"pgbench -i -s {scale} into database {DATABASE}"
        psql_super(f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {OTHER}", DATABASE)
        return note

    def serve_role(self, role: str) -> None:
        """Let the bench's PgBouncers log ``role`` in (clients and servers) with PostgreSQL's own verifier.

        The SCRAM secret goes into the auth file exactly as pg_authid holds it, which lets PgBouncer log
        into PostgreSQL as that role without knowing its password (the lab's PgBouncer does the same).
        """
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", role):
            raise LabError(f"not a plain role name: {role!r}")
        secret = psql_super(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{role}'").strip()  # noqa: S608
        if not secret.startswith("SCRAM-SHA-256$"):
            raise LabError(f"role {role} has no SCRAM password in PostgreSQL: the bench cannot serve it")
        with (self.dir / "userlist.txt").open("a") as fh:
            fh.write(f'"{role}" "{secret}"\n')

    def reset_tables(self) -> None:
        """What pgbench does before a run without -n: vacuum the small tables, empty the history."""
        psql_super("VACUUM pgbench_branches; VACUUM pgbench_tellers; TRUNCATE pgbench_history;", DATABASE)

    def backends(self) -> dict[str, int]:
        """Client backends in pg_stat_activity now: all of them, the bench's, and everyone else's."""
        out = psql_super(
            "SELECT count(*), count(*) FILTER (WHERE usename LIKE 'poolbench%') FROM pg_stat_activity "
            "WHERE backend_type = 'client backend'"
        ).strip()
        total, ours = (int(x) for x in out.split("|"))
        return {"client_backends": total, "bench": ours, "others": total - ours}

    def settings(self) -> dict[str, int]:
        """max_connections and superuser_reserved_connections of the running server."""
        out = psql_super(
            "SELECT current_setting('max_connections'), current_setting('superuser_reserved_connections')"
        ).strip()
        mx, su = (int(x) for x in out.split("|"))
        return {"max_connections": mx, "superuser_reserved_connections": su}

    def try_direct_login(self, timeout: float = 3.0) -> str | None:
        """Connect straight to PostgreSQL as the non-superuser migration role; None if it got in."""
        import psycopg  # noqa: PLC0415 - only the multiplied run needs it

        try:
            with psycopg.connect(
                host=PG_HOST,
                port=PG_PORT,
                user=MIGRATE,
                dbname=DATABASE,
                password=self.passwords[MIGRATE],
                connect_timeout=max(1, round(timeout)),
                application_name="poolbench-migration",
            ) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return str(exc).strip().splitlines()[-1][:200]
        return None

    # --- PgBouncer --------------------------------------------------------------------------------

    def free_port(self) -> int:
        """The next loopback port from 7432 up that nothing listens on."""
        while self._next_port < FIRST_PORT + 500:
            port = self._next_port
            self._next_port += 1
            if port_is_free(port):
                return port
        raise LabError("no free loopback port between 7432 and 7931 for the bench's PgBouncer")

    def start(
        self,
        settings: Mapping[str, Any],
        databases: Mapping[str, str],
        *,
        port: int | None = None,
        processes: int = 1,
    ) -> list[Bouncer]:
        """Start ``processes`` PgBouncers on one port (so_reuseport when more than one); wait until ready."""
        port = port or self.free_port()
        started = []
        for _ in range(processes):
            self._seq += 1
            name = f"pgb{self._seq}"
            log, pid = self.dir / f"{name}.log", self.dir / f"{name}.pid"
            conf = {
                "listen_addr": "127.0.0.1",
                "listen_port": port,
                "unix_socket_dir": "",
                "auth_type": "scram-sha-256",
                "auth_file": self.dir / "userlist.txt",
                "admin_users": ADMIN,
                "stats_users": ADMIN,
                "pool_mode": "transaction",
                "logfile": log,
                "pidfile": pid,
                "log_connections": 0,
                "log_disconnections": 0,
                "ignore_startup_parameters": "extra_float_digits",
                **({"so_reuseport": 1} if processes > 1 else {}),
                **settings,
            }
            text = "[databases]\n" + "".join(
                f"{alias} = host={PG_HOST} port={PG_PORT} dbname={db}\n" for alias, db in databases.items()
            )
            text += "\n[pgbouncer]\n" + "".join(f"{k} = {v}\n" for k, v in conf.items())
            path = self.dir / f"{name}.ini"
            path.write_text(text)
            proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
                [PGBOUNCER, str(path)],
                user=RUN_AS if os.geteuid() == 0 else None,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                process_group=0,  # a Ctrl-C at the terminal reaches the bench, which stops it
            )
            bouncer = Bouncer(name, port, path, log, proc, self.passwords[ADMIN])
            self.bouncers.append(bouncer)
            started.append(bouncer)
            self._wait_listening(bouncer)
        return started

    def stop(self, bouncers: list[Bouncer]) -> None:
        """Stop these PgBouncers (their server connections go with them)."""
        for b in bouncers:
            b.stop()
            if b in self.bouncers:
                self.bouncers.remove(b)

    @staticmethod
    def _wait_listening(b: Bouncer, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if b.proc.poll() is not None:
                tail = b.logfile.read_text(errors="replace")[-400:] if b.logfile.exists() else ""
                raise LabError(f"PgBouncer {b.name} on port {b.port} exited at start: {tail.strip()}")
            if b.logfile.exists() and "listening on" in b.logfile.read_text(errors="replace"):
                return
            time.sleep(0.05)
        raise LabError(f"PgBouncer {b.name} did not listen on port {b.port} within {timeout:g} s")

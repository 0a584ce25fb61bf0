"""Throwaway PgBouncer processes and the bench database on the lab's fleet (bench/pool_sizing.py, its test).

The bench runs on this machine (the controller) and reaches the fleet over its network, as an app
would: pgbench and the admin console from here against the PgBouncer host's address. Its PgBouncer
processes run on the first PgBouncer host of inventory/lab (bench/fleet.py), next to the lab's own
(port 6432, never touched) on free ports from 7432 up, each a transient systemd unit
(``pool-sizing-*``, as the ``postgres`` system user, PgBouncer refuses root) with its config, auth
file, log and pidfile in a private directory ``/run/pool-sizing-*`` on that host. :meth:`BenchLab.close`,
which the context manager calls even on an error, Ctrl-C or SIGTERM, stops every unit and removes the
directory; a run killed before that leaves units that the next run removes first.

In PostgreSQL, as the superuser over SSH on the database host (``sudo -n -u postgres psql``, SQL on
stdin): a database ``bench`` and roles of its own (``poolbench_a`` owns the tables, ``poolbench_b`` may
use them, ``poolbench_direct`` is the ceiling's client straight to PostgreSQL, ``poolbench_migrate``
only connects, standing in for a migration that bypasses the pooler). The lab's pg_hba admits members
of the app role only from the PgBouncer hosts, and other roles only from this machine: so the roles
that go through the bench's PgBouncer are made members of ``app`` without its privileges (INHERIT
FALSE, SET FALSE), and the roles that connect straight from here are not. Their passwords are
generated on every run, set through psql's standard input, kept in files of mode 0600 and never printed.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fleet
from fleet import FleetError

from toolkit.adapters import pgbench
from toolkit.adapters.pgbouncer import AdminConsole, AdminTarget

PGBOUNCER = "/usr/sbin/pgbouncer"
RUN_AS = "postgres"
DATABASE = "bench"
OWNER, OTHER, MIGRATE, ADMIN = "poolbench_a", "poolbench_b", "poolbench_migrate", "poolbench_admin"
DIRECT = "poolbench_direct"
APP_GROUP = "app"  # pg_hba's +app: the roles it admits from the PgBouncer hosts only
PG_HOST, PG_PORT = fleet.db_host().address, 5432
BENCH_HOST = fleet.pgbouncer_host()
MARK = "pool-sizing-"  # the transient units and their directories on BENCH_HOST
FIRST_PORT = 7432
LOCK = Path(tempfile.gettempdir()) / "pool-sizing-bench.lock"
# What PostgreSQL answers a login beyond max_connections, and what PgBouncer logs for a failed login.
LOGIN_FAILURE = re.compile(r"remaining connection slots|login failed|too many connections", re.IGNORECASE)


class LabError(RuntimeError):
    """The bench could not set itself up (one line: what failed and what to do)."""


def psql_super(sql: str, dbname: str = "postgres", timeout: float = 120) -> str:
    """Run SQL (on standard input, so no secret shows in a process list) as postgres on the database host."""
    try:
        return fleet.psql_super(sql, dbname, timeout)
    except FleetError as exc:
        raise LabError(f"psql as postgres on {dbname}: {exc}") from None


UNIT_MAX_S = 3600  # a unit ends on its own after this, should every cleanup be skipped


def remote(body: str, params: Mapping[str, Any], timeout: float = 60) -> str:
    """Run ``body`` as root with python3 on BENCH_HOST (bench/fleet.py), as LabError when it fails."""
    try:
        return fleet.run_python(BENCH_HOST, body, params, timeout)
    except FleetError as exc:
        raise LabError(str(exc)) from None


def port_is_free(port: int, host: str = BENCH_HOST.address) -> bool:
    """True if nothing listens on host:port (a connection is refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) != 0


@dataclass
class Bouncer:
    """One PgBouncer process of the bench."""

    name: str
    port: int
    config: str  # on BENCH_HOST
    logfile: str  # on BENCH_HOST
    unit: str
    admin_password: str = field(repr=False)
    stopped: bool = False

    def log(self) -> str:
        """The process's log file (empty when it has none yet)."""
        return fleet.ssh(BENCH_HOST, f"sudo -n cat {self.logfile}", check=False)

    def login_failures(self) -> list[str]:
        """Log lines of server logins PostgreSQL refused (slots exhausted) or that failed otherwise."""
        return [ln for ln in self.log().splitlines() if LOGIN_FAILURE.search(ln)]

    def admin(self, timeout: float = 5.0) -> AdminConsole:
        """A session on this process's admin console, from here over the lab's network."""
        return AdminConsole(
            AdminTarget(BENCH_HOST.address, self.port, ADMIN, self.admin_password, self.name), timeout
        )

    def stop(self) -> None:
        """Stop the unit (SIGTERM: immediate shutdown in 1.18; systemd kills it if it lingers)."""
        if not self.stopped:
            remote(fleet.CLEAN, {"units": f"{self.unit}.service", "dirs": ""})
            self.stopped = True


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
        self.dir = Path(tempfile.mkdtemp(prefix=MARK))
        self.mark = MARK + secrets.token_hex(4)  # this run's units and directory on BENCH_HOST
        self.remote_dir = f"/run/{self.mark}"
        self.passwords = {r: secrets.token_hex(16) for r in (OWNER, OTHER, MIGRATE, DIRECT, ADMIN)}
        self.bouncers: list[Bouncer] = []
        self.runs: list[pgbench.Run] = []
        self.cleanups: list[Callable[[], None]] = []  # run first by close(), newest first
        self._next_port = FIRST_PORT
        self._seq = 0
        self.dir.chmod(0o700)
        pgpass = self.dir / "pgpass"
        pgpass.touch(0o600)
        pgpass.write_text("".join(f"*:*:*:{u}:{p}\n" for u, p in self.passwords.items()))
        self.userlist = "".join(f'"{u}" "{p}"\n' for u, p in self.passwords.items())
        remote(fleet.CLEAN, {"units": f"{MARK}*.service", "dirs": f"/run/{MARK}*"})  # what a killed run left
        # 30 s: pinned, 200 pgbench clients log in (SCRAM) through a PgBouncer that shares one CPU with
        # them, and one login waited more than 10 s on the fleet (2026-12-01, a loaded machine).
        self.env = {**os.environ, "PGPASSFILE": str(pgpass), "PGCONNECT_TIMEOUT": "30"}
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
        try:
            remote(fleet.CLEAN, {"units": f"{self.mark}-*.service", "dirs": self.remote_dir})
        except LabError as exc:
            print(f"bench cleanup: {exc}", file=sys.stderr)
        self.bouncers.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
        self._lock.close()

    # --- PostgreSQL -------------------------------------------------------------------------------

    def endpoint(self, port: int = PG_PORT, user: str = OWNER, dbname: str = DATABASE) -> pgbench.Endpoint:
        """Where pgbench connects: a bench PgBouncer's port on BENCH_HOST, or PostgreSQL itself.

        Straight to PostgreSQL (port 5432) the client is DIRECT: pg_hba refuses the pooled roles from
        this machine.
        """
        if port == PG_PORT:
            return pgbench.Endpoint(PG_HOST, port, DIRECT if user in (OWNER, OTHER) else user, dbname)
        return pgbench.Endpoint(BENCH_HOST.address, port, user, dbname)

    def prepare(self, scale: int) -> str:
        """Roles with fresh passwords, database ``bench``, pgbench tables at ``scale`` (reused if there)."""
        roles = "".join(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{r}') THEN "
            f"CREATE ROLE {r} LOGIN; END IF; END$$;\n"
            f"ALTER ROLE {r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD '{self.passwords[r]}';\n"
            for r in (OWNER, OTHER, MIGRATE, DIRECT)
        )
        # Admitted from the PgBouncer hosts (pg_hba's +app), with none of app's privileges.
        roles += "".join(f"GRANT {APP_GROUP} TO {r} WITH INHERIT FALSE, SET FALSE;\n" for r in (OWNER, OTHER))
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
            # On the database host as postgres, then handed to OWNER: no pooled role logs in from here.
            init = f"sudo -n -u postgres /usr/lib/postgresql/*/bin/pgbench -i -q -s {scale} {DATABASE}"
            try:
                fleet.ssh(fleet.db_host(), init, timeout=600)
            except FleetError as exc:
                raise LabError(f"pgbench -i on the database host: {exc}") from None
            psql_super(
                "".join(
                    f"ALTER TABLE {t} OWNER TO {OWNER};\n"
                    for t in ("pgbench_accounts", "pgbench_branches", "pgbench_tellers", "pgbench_history")
                ),
                DATABASE,
            )
            note = f"pgbench -i -s {scale} into database {DATABASE} (on {fleet.db_host().name})"
        psql_super(
            f"GRANT SELECT, INSERT, UPDATE ON ALL TABLES IN SCHEMA public TO {OTHER}, {DIRECT}", DATABASE
        )
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
        self.userlist += f'"{role}" "{secret}"\n'

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
                host=PG_HOST,  # from here: pg_hba admits the (non-app) migration role from this machine
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
        """The next port from 7432 up that nothing listens on at BENCH_HOST's address."""
        while self._next_port < FIRST_PORT + 2000:
            port = self._next_port
            self._next_port += 1
            if port_is_free(port):
                return port
        raise LabError(f"no free port between 7432 and 9431 on {BENCH_HOST.name} for the bench's PgBouncer")

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
            d = self.remote_dir
            log, pid, ini = f"{d}/{name}.log", f"{d}/{name}.pid", f"{d}/{name}.ini"
            conf = {
                "listen_addr": BENCH_HOST.address,
                "listen_port": port,
                "unix_socket_dir": "",
                "auth_type": "scram-sha-256",
                "auth_file": f"{d}/userlist.txt",
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
            unit = f"{self.mark}-{name}"
            bouncer = Bouncer(name, port, ini, log, unit, self.passwords[ADMIN])
            self.bouncers.append(bouncer)
            remote(
                fleet.START_UNIT,
                {
                    "dir": d,
                    "user": RUN_AS,
                    "files": {f"{name}.ini": text, "userlist.txt": self.userlist},
                    "unit": unit,
                    "max_s": UNIT_MAX_S,
                    "argv": [PGBOUNCER, ini],
                },
            )
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
    def _wait_listening(b: Bouncer, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        where = f"PgBouncer {b.name} on {BENCH_HOST.name}:{b.port}"
        while time.monotonic() < deadline:
            log = b.log()
            if "listening on" in log:
                return
            state = fleet.ssh(BENCH_HOST, f"systemctl is-active {b.unit}.service", check=False).strip()
            if state == "failed":
                raise LabError(f"{where} exited at start: {log[-400:]}")
            time.sleep(0.2)
        raise LabError(f"{where} did not listen within {timeout:g} s")

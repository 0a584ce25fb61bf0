"""The roles deployed onto the fleet over SSH (inventory/lab, `make lab`), seen from here.

PostgreSQL on db1 admits the app role only from the PgBouncer hosts and the monitoring role from the
controller, all with SCRAM; each PgBouncer answers on its own address; pgb2's two processes forward
cancel requests to each other (peers); both app nodes serve requests that reach the database through the
tier; Redis refuses its default user; every unit is active under systemd. That a second deploy changes
nothing on any host is tests/integration/test_playbooks.py's (run once in make test). Secrets are read
from .lab/ and never printed.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis

from tests.fleet.conftest import ROOT, Ssh, admin, recaps, secret
from toolkit.adapters.pgbouncer import AdminConsole

pytestmark = pytest.mark.fleet

BIN = ROOT / ".venv" / "bin"
DB = "198.18.0.10"
PGBOUNCERS = {"pgb1": "198.18.0.11", "pgb2": "198.18.0.12"}
APPS = {"app1": "198.18.0.13", "app2": "198.18.0.14"}
REDIS = {"redis1": "198.18.0.15", "redis2": "198.18.0.16"}
CONTROLLER = "198.18.0.1"
UNITS = {
    "db1": ["postgresql@17-main"],
    "pgb1": ["pgbouncer"],
    "pgb2": ["pgbouncer", "pgbouncer-2"],
    "app1": ["toolkit-demo-app1"],
    "app2": ["toolkit-demo-app2"],
    "redis1": ["redis-server"],
    "redis2": ["redis-server"],
}


def deploy() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", "inventory/lab", "playbooks/lab.yml"],
        cwd=ROOT,
        env={
            "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
            "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_FORCE_COLOR": "0",
            "HOME": str(Path.home()),
        },
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )


@pytest.fixture(scope="module")
def deployed(fleet: Any, ssh: Ssh) -> None:
    """The fleet as `make lab` deployed it: checked here, not deployed again.

    make test's lab stage deployed these roles, and tests/integration/test_playbooks.py proved that a
    second whole deploy changes nothing on any host, so a third one here (about 100 s) would prove
    nothing new. Every unit the roles install must be loaded on its host and the lab's secrets must
    exist, or the fleet was never deployed. TOOLKIT_FLEET_DEPLOY=1 deploys first (after a manual change)."""
    if os.environ.get("TOOLKIT_FLEET_DEPLOY") == "1":
        proc = deploy()
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
        assert set(recaps(proc.stdout)) == set(UNITS), proc.stdout[-2000:]
    secret("app_password")
    for host, units in UNITS.items():
        proc = ssh(host, f"systemctl show -p LoadState --value {' '.join(units)}")
        if proc.stdout.split() != ["loaded"] * len(units):
            pytest.fail(f"{host}: units {units} are not all installed ({proc.stdout.split()}): run make lab")


def app_psql_on(host: str, sql: str) -> subprocess.CompletedProcess[str]:
    """psql on a fleet host as the app role straight to db1; the password reaches it on stdin, never argv."""
    dsn = f"host={DB} port=5432 dbname=app user=app sslmode=disable"
    return subprocess.run(
        [
            "ssh",
            "-F",
            str(ROOT / ".lab/fleet/ssh_config"),
            host,
            f"read -r PGPASSWORD; export PGPASSWORD; psql -X -A -t '{dsn}' -c '{sql}'",
        ],
        input=secret("app_password") + "\n",
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_every_unit_is_active_and_enabled_under_systemd(deployed: None, ssh: Ssh) -> None:
    for host, units in UNITS.items():
        proc = ssh(host, f"systemctl is-active {' '.join(units)}; systemctl is-enabled {' '.join(units)}")
        assert proc.stdout.split() == ["active"] * len(units) + ["enabled"] * len(units), (host, proc.stdout)


def test_each_service_listens_on_its_host_address_only(deployed: None, ssh: Ssh) -> None:
    ports = {
        "db1": (DB, 5432),
        **{h: (a, 6432) for h, a in PGBOUNCERS.items()},
        **{h: (a, 8000) for h, a in APPS.items()},
        **{h: (a, 6379) for h, a in REDIS.items()},
    }
    for host, (addr, port) in ports.items():
        proc = ssh(host, f"ss -Hltn 'sport = :{port}'")
        assert proc.returncode == 0, (host, proc.stderr)
        local = {line.split()[3] for line in proc.stdout.splitlines() if line.strip()}
        assert local == {f"{addr}:{port}"}, (host, local)


def test_postgresql_admits_the_app_role_from_the_pgbouncer_hosts_only(deployed: None, ssh: Ssh) -> None:
    with pytest.raises(psycopg.OperationalError, match=r"pg_hba\.conf rejects connection"):
        psycopg.connect(
            host=DB,
            port=5432,
            dbname="app",
            user="app",
            password=secret("app_password"),
            connect_timeout=5,
            sslmode="disable",
        ).close()
    for host, addr in PGBOUNCERS.items():
        proc = app_psql_on(host, "SELECT inet_client_addr()")
        assert (proc.returncode, proc.stdout.strip()) == (0, addr), (host, proc.stderr)
    # From an app node the app role is refused too: it goes through the tier.
    proc = app_psql_on("app1", "SELECT 1")
    assert proc.returncode != 0 and "rejects connection" in proc.stderr


def test_the_monitoring_role_logs_in_from_the_controller_with_scram(deployed: None, ssh: Ssh) -> None:
    with psycopg.connect(
        host=DB,
        port=5432,
        dbname="postgres",
        user="toolkit_monitor",
        password=secret("monitor_password"),
        connect_timeout=5,
        sslmode="disable",
    ) as conn:
        assert conn.execute("SELECT host(inet_client_addr())").fetchone() == (CONTROLLER,)
    # Every TCP rule is SCRAM or reject; no password is stored any other way.
    proc = ssh(
        "db1",
        "sudo -n -u postgres psql -X -A -t "
        "-c \"SELECT string_agg(DISTINCT auth_method, ',' ORDER BY auth_method) "
        "FROM pg_hba_file_rules WHERE type = 'host'\" -c \"SELECT count(*) FROM pg_authid "
        "WHERE rolpassword IS NOT NULL AND rolpassword NOT LIKE 'SCRAM-SHA-256$%'\"",
    )
    assert proc.stdout.split() == ["reject,scram-sha-256", "0"], proc.stderr


def test_each_pgbouncer_answers_show_pools_on_its_address(deployed: None) -> None:
    for host, addr in PGBOUNCERS.items():
        with admin(addr) as console:
            databases = console.rows("SHOW DATABASES")
            pools = console.rows("SHOW POOLS")
        assert {"app", "pgbouncer"} <= {d["name"] for d in databases}, host
        assert "pgbouncer" in {p["database"] for p in pools}, host


def test_pgb2_runs_two_processes_that_are_peers(deployed: None, ssh: Ssh) -> None:
    proc = ssh("pgb2", "pgrep -c -x pgbouncer; /usr/sbin/pgbouncer --version | head -1")
    count, version = proc.stdout.splitlines()[:2]
    assert count == "2" and "1.24" in version, proc.stdout
    with admin(PGBOUNCERS["pgb2"]) as console:
        peers = console.rows("SHOW PEERS")
    assert sorted(int(p["peer_id"]) for p in peers) == [1, 2]
    # pgb1 (1.18) has one process and no peers configured.
    assert ssh("pgb1", "pgrep -c -x pgbouncer").stdout.strip() == "1"
    assert ssh("pgb1", "sudo -n grep -c peer /etc/pgbouncer/pgbouncer.restart.ini").stdout.strip() == "0"


CANCEL_LOGS = {"pgb1": {1: "pgbouncer.log"}, "pgb2": {1: "pgbouncer.log", 2: "pgbouncer-2.log"}}


def log_sizes(ssh: Ssh, host: str) -> dict[int, int]:
    files = " ".join(f"/var/log/postgresql/{f}" for f in CANCEL_LOGS[host].values())
    sizes = ssh(host, f"sudo -n stat -c %s {files}").stdout.split()
    return {p: int(n) for p, n in zip(CANCEL_LOGS[host], sizes, strict=True)}


def cancel_lines(ssh: Ssh, host: str, since: dict[int, int]) -> dict[int, list[str]]:
    """Each process's log lines about cancel requests written since `since` (byte offsets)."""
    out = {}
    for process, name in CANCEL_LOGS[host].items():
        text = ssh(host, f"sudo -n tail -c +{since[process] + 1} /var/log/postgresql/{name}").stdout
        out[process] = [line for line in text.splitlines() if "cancel request" in line]
    return out


def app_conn(addr: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=addr,
        port=6432,
        dbname="app",
        user="app",
        password=secret("app_password"),
        connect_timeout=5,
        sslmode="disable",
        autocommit=True,
    )


def process_of(conn: psycopg.Connection[Any], admins: dict[int, AdminConsole]) -> int:
    """The peer_id of the PgBouncer process serving this client connection (SHOW CLIENTS, by its port)."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        port = sock.getsockname()[1]
    for process, adm in admins.items():
        if any(int(c["port"]) == port and c["addr"] == CONTROLLER for c in adm.rows("SHOW CLIENTS")):
            return process
    raise AssertionError(f"no PgBouncer process lists the client on port {port}")


def admins_per_process(addr: str, processes: int) -> dict[int, AdminConsole]:
    """One admin console on each process (the adapter retries until so_reuseport hands it that one)."""
    return {process: admin(addr, process) for process in range(1, processes + 1)}


def cancel_many(conn: psycopg.Connection[Any], tries: int) -> int:
    """Cancel a 5 s query `tries` times, each through a new connection (so_reuseport picks its process)."""
    landed = 0
    for _ in range(tries):
        timer = threading.Timer(0.3, conn.cancel_safe)
        timer.start()
        started = time.monotonic()
        try:
            conn.execute("SELECT pg_sleep(5)")
        except psycopg.errors.QueryCanceled:
            landed += 1
        finally:
            timer.join()
        assert time.monotonic() - started < 10
    return landed


def test_every_cancel_through_pgb2_lands(deployed: None, ssh: Ssh) -> None:
    """so_reuseport hands each cancel request's own connection to either process; peers forward the
    ones that reach the process not serving the query. A query runs on each process in turn."""
    tries = 20
    admins = admins_per_process(PGBOUNCERS["pgb2"], 2)
    conns: dict[int, psycopg.Connection[Any]] = {}
    spare: list[psycopg.Connection[Any]] = []
    try:
        for _ in range(30):
            conn = app_conn(PGBOUNCERS["pgb2"])
            process = process_of(conn, admins)
            if process in conns:
                spare.append(conn)
            else:
                conns[process] = conn
            if len(conns) == 2:
                break
        assert sorted(conns) == [1, 2], "30 client connections reached only one of pgb2's processes"
        since = log_sizes(ssh, "pgb2")
        landed = {process: cancel_many(conn, tries) for process, conn in sorted(conns.items())}
        lines = cancel_lines(ssh, "pgb2", since)
    finally:
        for c in [*conns.values(), *spare]:
            c.close()
        for console in admins.values():
            console.close()
    assert landed == {1: tries, 2: tries}, f"cancels that landed, per process running the query: {landed}"
    # Every cancel from here reached one of the processes: handled there (app/...) or forwarded to the
    # peer that runs the query (peer-N@...). Both processes received some, and both forwarded some.
    received = {p: [x for x in ls if f"@{CONTROLLER}:" in x] for p, ls in lines.items()}
    forwarded = {p: sum("peer-" in x for x in ls) for p, ls in received.items()}
    print(
        f"pgb2 cancels received per process { ({p: len(v) for p, v in received.items()}) }, "
        f"forwarded to the peer {forwarded}"
    )
    assert sum(len(v) for v in received.values()) == 2 * tries, lines
    assert all(received.values()) and all(forwarded.values()), (received, forwarded)
    assert not [x for ls in lines.values() for x in ls if "failed cancel request" in x], lines


def test_every_cancel_through_pgb1_lands(deployed: None, ssh: Ssh) -> None:
    """pgb1 (1.18) runs one process without peers: every cancel reaches the process running the query."""
    tries = 20
    since = log_sizes(ssh, "pgb1")
    with app_conn(PGBOUNCERS["pgb1"]) as conn:
        landed = cancel_many(conn, tries)
    lines = cancel_lines(ssh, "pgb1", since)[1]
    assert landed == tries, f"{tries - landed} of {tries} cancel requests were lost"
    received = [x for x in lines if f"@{CONTROLLER}:" in x]
    assert len(received) == tries and not [x for x in lines if "failed" in x or "peer-" in x], lines


def test_both_app_nodes_serve_requests_through_the_pgbouncer_tier(deployed: None) -> None:
    for node, addr in APPS.items():
        with urllib.request.urlopen(f"http://{addr}:8000/books/", timeout=10) as resp:
            assert resp.status == 200, node
        # A request holds a transaction: PostgreSQL sees it from a PgBouncer host, named after the node.
        holder = threading.Thread(
            target=lambda a=addr: urllib.request.urlopen(
                f"http://{a}:8000/idle-transaction/?ms=2000", timeout=10
            ).read()
        )
        holder.start()
        try:
            seen: set[tuple[str, str]] = set()
            with psycopg.connect(
                host=DB,
                port=5432,
                dbname="postgres",
                user="toolkit_monitor",
                password=secret("monitor_password"),
                connect_timeout=5,
                autocommit=True,  # each poll sees a new snapshot of pg_stat_activity
                sslmode="disable",
            ) as conn:
                for _ in range(30):
                    seen = {
                        (r[0], r[1])
                        for r in conn.execute(
                            "SELECT application_name, host(client_addr) FROM pg_stat_activity "
                            "WHERE datname = 'app' AND state = 'idle in transaction'"
                        ).fetchall()
                    }
                    if any(name == node for name, _ in seen):
                        break
                    time.sleep(0.1)
        finally:
            holder.join()
        assert {a for name, a in seen if name == node} <= set(PGBOUNCERS.values()), seen
        assert any(name == node for name, _ in seen), seen


def test_redis_refuses_the_default_user_and_accepts_the_app_user(deployed: None, ssh: Ssh) -> None:
    for host, addr in REDIS.items():
        with pytest.raises(redis.exceptions.AuthenticationError):
            redis.Redis(host=addr, port=6379, socket_timeout=5).ping()
        app = redis.Redis(
            host=addr, port=6379, username="app", password=secret("redis_app_password"), socket_timeout=5
        )
        assert app.ping() is True
        app.set("lab:fleet-test", "1", ex=10)
        with pytest.raises(redis.exceptions.NoPermissionError):
            app.set("other:fleet-test", "1")
        app.close()
        conf = ssh(host, "sudo -n grep -E '^(protected-mode|bind) ' /etc/redis/redis.conf")
        assert sorted(conf.stdout.splitlines()) == [f"bind {addr}", "protected-mode yes"], host

"""The demo app that roles/django_demo deployed onto the lab's app nodes: app1 (gunicorn gthread) and app2
(uvicorn) answer on their own addresses, reach PostgreSQL through the PgBouncer tier under their own
application_name, share the Redis cache under the lab's prefix with a TTL, keep their secrets unreadable
to others, and the launcher on the node refuses bad input. Everything is read over the network or SSH."""

from __future__ import annotations

import json
import shlex
import subprocess
import threading
import time
import urllib.request
import uuid
from typing import Any

import pytest
import redis

from tests.integration.conftest import (
    APP_HOSTS,
    BIN,
    LAB_INVENTORY,
    PGBOUNCER_HOSTS,
    address,
    app_connection,
    lab_secret,
    ssh,
    ssh_ok,
)

pytestmark = pytest.mark.integration
DEMO = "/opt/toolkit-demo"
PORT = 8000


def url(node: str, path: str) -> str:
    return f"http://{address(node)}:{PORT}{path}"


def get(link: str, method: str = "GET", body: bytes | None = None) -> dict[str, Any]:
    req = urllib.request.Request(link, data=body, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


def node_config(node: str) -> dict[str, Any]:
    """The node's config file, read on the node as root (it holds secrets: never printed)."""
    data: dict[str, Any] = json.loads(ssh_ok(node, f"sudo -n cat {DEMO}/etc/{node}.json"))
    return data


def test_the_lab_has_the_two_app_nodes() -> None:
    assert APP_HOSTS == ["app1", "app2"], "inventory/lab changed: update the demo's tests"


@pytest.mark.parametrize("node", APP_HOSTS)
def test_each_node_answers_as_itself_with_data_through_pgbouncer(node: str) -> None:
    assert get(url(node, "/healthz")) == {"ok": True, "node": node}
    page = get(url(node, "/books/"))
    assert page["count"] == 50 and {"id", "title", "author"} == set(page["books"][0])
    detail = get(url(node, f"/books/{page['books'][0]['id']}/"))
    assert detail["id"] == page["books"][0]["id"] and isinstance(detail["tags"], list)
    assert get(url(node, "/async/books/"))["books"] == page["books"]


def test_the_servers_are_gunicorn_and_uvicorn_with_the_inventory_workers() -> None:
    app1 = ssh_ok("app1", "ps -eo args").splitlines()
    app2 = ssh_ok("app2", "ps -eo args").splitlines()
    assert any(
        "gunicorn" in c and f"--bind {address('app1')}:{PORT}" in c and "--worker-class gthread" in c
        for c in app1
    ), app1
    assert any(
        "uvicorn" in c and f"--host {address('app2')} --port {PORT}" in c and "--workers 2" in c for c in app2
    ), app2
    assert not any("uvicorn" in c for c in app1) and not any("gunicorn" in c for c in app2)
    config = node_config("app1")
    assert (config["server"], config["workers"], config["threads"]) == ("wsgi_gthread", 3, 4)
    assert node_config("app2")["server"] == "asgi"


@pytest.mark.parametrize("node", APP_HOSTS)
def test_each_node_reaches_the_database_through_both_pgbouncer_hosts(node: str) -> None:
    config = node_config(node)
    tier = ",".join(address(host) for host in PGBOUNCER_HOSTS)
    assert (config["database"]["host"], config["database"]["port"]) == (tier, 6432)
    assert config["database"]["connect_timeout"] > 0  # one host down costs at most this
    assert (config["bind"], config["port"], config["node"]) == (address(node), PORT, node)


@pytest.mark.parametrize("node", APP_HOSTS)
def test_a_request_holds_a_backend_named_after_its_node_from_a_pgbouncer_host(node: str) -> None:
    held = threading.Thread(target=get, args=(url(node, "/idle-transaction/?ms=8000"),))
    held.start()
    try:
        seen: list[tuple[str, str, str]] = []
        with app_connection(f"toolkit-tests-{node}") as conn:
            # Autocommit: inside one transaction pg_stat_activity is a snapshot that never changes.
            conn.autocommit = True
            for _ in range(150):  # up to 15 s: a busy machine may be slow to start the request
                rows = conn.execute(
                    "SELECT application_name, state, host(client_addr) FROM pg_stat_activity "
                    "WHERE datname = 'app' AND application_name = %s",
                    (node,),
                ).fetchall()
                seen = [(str(a), str(s), str(c)) for a, s, c in rows]
                if any(state == "idle in transaction" for _, state, _ in seen):
                    break
                time.sleep(0.1)
        held_rows = [row for row in seen if row[1] == "idle in transaction"]
        assert held_rows, seen
        # PostgreSQL sees the PgBouncer host the node went through, never the node or this machine.
        assert {client for _, _, client in held_rows} <= {address(h) for h in PGBOUNCER_HOSTS}, held_rows
    finally:
        held.join(timeout=30)


def test_both_nodes_share_the_redis_cache_under_the_prefix_with_a_ttl() -> None:
    key, value = f"itest-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    get(url("app1", f"/cache/{key}/"), "PUT", value.encode())
    read = get(url("app2", f"/cache/{key}/"))
    assert (read["value"], read["hit"], read["node"]) == (value, True, "app2")
    location = node_config("app2")["cache"]["location"]
    assert location == node_config("app1")["cache"]["location"] == f"redis://{address('redis1')}:6379/0"
    client = redis.Redis(
        host=address("redis1"), port=6379, username="app", password=lab_secret("redis_app_password")
    )
    try:
        stored = [k.decode() for k in client.scan_iter(match=f"lab:*:{key}", count=1000)]
        assert stored == [f"lab:1:{key}"]
        assert 0 < client.ttl(stored[0]) <= 300
        client.unlink(*stored)
    finally:
        client.close()


@pytest.mark.parametrize("node", APP_HOSTS)
def test_node_config_files_are_readable_only_by_root_and_the_app_group(node: str) -> None:
    files = ssh_ok(
        node, f"sudo -n stat -c '%a %U %G %n' {DEMO}/etc/{node}.json {DEMO}/bin/serve"
    ).splitlines()
    assert files == [f"640 root toolkit-demo {DEMO}/etc/{node}.json", f"755 root root {DEMO}/bin/serve"]
    # The login user of the host is not in the app group: it cannot read the secrets.
    assert ssh(node, f"cat {DEMO}/etc/{node}.json").returncode != 0


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        ([], {}, 64, "usage: serve NODE PORT"),
        (["app1", "99999"], {}, 64, "is not a TCP port"),
        (["../etc", "8199"], {}, 64, "is not a node name"),
        (["app9", "8199"], {}, 65, "app9.json does not exist"),
        (["app1", "8199"], {"TOOLKIT_DEMO_CACHE": "memcached"}, 64, "use redis or locmem"),
    ],
)
def test_serve_refuses_bad_input_with_one_line(
    args: list[str], env: dict[str, str], code: int, says: str
) -> None:
    """The launcher on app1, as root with a bare environment (as its unit starts it)."""
    variables = " ".join(shlex.quote(f"{k}={v}") for k, v in {"PATH": "/usr/bin:/bin", **env}.items())
    command = " ".join(shlex.quote(a) for a in [f"{DEMO}/bin/serve", *args])
    done = ssh("app1", f"sudo -n env -i {variables} {command}", timeout=30)
    assert done.returncode == code, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_doctor_reads_both_nodes_settings_and_finds_no_django_or_cache_fault() -> None:
    done = subprocess.run(
        [str(BIN / "toolkit"), "doctor", "-i", str(LAB_INVENTORY), "--format", "json", "--offline"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    doc = json.loads(done.stdout)
    django = {t["address"]: t["ok"] for t in doc["targets"] if t["kind"] == "django"}
    assert django == {f"{node}:demo.settings": True for node in APP_HOSTS}
    ids = [f["id"] for f in doc["findings"]]
    assert not [i for i in ids if i.startswith(("django.", "cache."))], ids
    assert lab_secret("app_password") not in done.stdout + done.stderr

"""The demo app that roles/django_demo deployed into the lab: both nodes answer, reach PostgreSQL
through PgBouncer under their own application_name, share the Redis cache under the lab's prefix
with a TTL, keep their secrets unreadable to others, and the launcher refuses bad input."""

from __future__ import annotations

import json
import stat
import subprocess
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.integration.conftest import BIN, LAB_INVENTORY, app_connection, lab_secret

pytestmark = pytest.mark.integration
DEMO = Path("/opt/toolkit-demo")
NODES = {"app-1": 8001, "app-2": 8002}


def get(url: str, method: str = "GET", body: bytes | None = None) -> dict[str, Any]:
    req = urllib.request.Request(url, data=body, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


@pytest.mark.parametrize("node", sorted(NODES))
def test_each_node_answers_as_itself_with_data_through_pgbouncer(node: str) -> None:
    base = f"http://127.0.0.1:{NODES[node]}"
    assert get(f"{base}/healthz") == {"ok": True, "node": node}
    page = get(f"{base}/books/")
    assert page["count"] == 50 and {"id", "title", "author"} == set(page["books"][0])
    detail = get(f"{base}/books/{page['books'][0]['id']}/")
    assert detail["id"] == page["books"][0]["id"] and isinstance(detail["tags"], list)
    assert get(f"{base}/async/books/")["books"] == page["books"]


def _command_lines() -> list[str]:
    out = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                out.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return out


def test_the_servers_are_gunicorn_and_uvicorn_with_the_inventory_workers() -> None:
    lines = _command_lines()
    assert any("gunicorn" in c and "127.0.0.1:8001" in c and "gthread" in c for c in lines)
    assert any("uvicorn" in c and "--port 8002" in c and "--workers 2" in c for c in lines)
    config = json.loads((DEMO / "etc" / "app-1.json").read_text())
    assert (config["server"], config["workers"], config["threads"]) == ("wsgi_gthread", 3, 4)
    assert config["database"]["port"] == 6432 and config["database_direct"]["port"] == 5432


def test_a_request_holds_a_pgbouncer_backend_named_after_its_node() -> None:
    held = threading.Thread(target=get, args=("http://127.0.0.1:8001/idle-transaction/?ms=8000",))
    held.start()
    try:
        seen: list[tuple[str, str]] = []
        with app_connection() as conn:
            # Autocommit: inside one transaction pg_stat_activity is a snapshot that never changes.
            conn.autocommit = True
            for _ in range(150):  # up to 15 s: a busy machine may be slow to start the request
                rows = conn.execute(
                    "SELECT application_name, state FROM pg_stat_activity "
                    "WHERE datname = 'app' AND application_name = 'app-1'"
                ).fetchall()
                seen = [(str(a), str(s)) for a, s in rows]
                if ("app-1", "idle in transaction") in seen:
                    break
                time.sleep(0.1)
        assert ("app-1", "idle in transaction") in seen
    finally:
        held.join(timeout=30)


def test_both_nodes_share_the_redis_cache_under_the_prefix_with_a_ttl() -> None:
    key, value = f"itest-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    get(f"http://127.0.0.1:8001/cache/{key}/", "PUT", value.encode())
    read = get(f"http://127.0.0.1:8002/cache/{key}/")
    assert (read["value"], read["hit"], read["node"]) == (value, True, "app-2")
    client = redis.Redis(
        host="127.0.0.1", port=6379, username="app", password=lab_secret("redis_app_password")
    )
    try:
        stored = [k.decode() for k in client.scan_iter(match=f"lab:*:{key}", count=1000)]
        assert stored == [f"lab:1:{key}"]
        assert 0 < client.ttl(stored[0]) <= 300
        client.unlink(*stored)
    finally:
        client.close()


def test_node_config_files_are_readable_only_by_root_and_the_app_group() -> None:
    for node in NODES:
        info = (DEMO / "etc" / f"{node}.json").stat()
        assert stat.S_IMODE(info.st_mode) == 0o640 and info.st_uid == 0
    assert stat.S_IMODE((DEMO / "bin" / "serve").stat().st_mode) == 0o755


@pytest.mark.parametrize(
    ("args", "env", "code", "says"),
    [
        ([], {}, 64, "usage: serve NODE PORT"),
        (["app-1", "99999"], {}, 64, "is not a TCP port"),
        (["../etc", "8199"], {}, 64, "is not a node name"),
        (["app-9", "8199"], {}, 65, "app-9.json does not exist"),
        (["app-1", "8199"], {"TOOLKIT_DEMO_CACHE": "memcached"}, 64, "use redis or locmem"),
    ],
)
def test_serve_refuses_bad_input_with_one_line(
    args: list[str], env: dict[str, str], code: int, says: str
) -> None:
    done = subprocess.run(
        [str(DEMO / "bin" / "serve"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin", **env},
        check=False,
    )
    assert done.returncode == code, done.stderr
    assert says in done.stderr and len(done.stderr.strip().splitlines()) == 1
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
    assert django == {"app-1:demo.settings": True, "app-2:demo.settings": True}
    ids = [f["id"] for f in doc["findings"]]
    assert not [i for i in ids if i.startswith(("django.", "cache."))], ids
    assert lab_secret("app_password") not in done.stdout

"""What bounds an app node's database connections, measured (docs/sizing.md, "What bounds an ASGI worker's
connections"; issue 14 §1).

For each app node of the lab (app2: uvicorn, 2 workers, the demo's BoundedBackends admitting
django_threads 4 per process; app1: gunicorn gthread, 3 workers x 4 threads), 3 x the model's web
demand of concurrent GETs go to the sync view that holds a transaction open (/idle-transaction/), while
the node's client connections on its PgBouncer (SHOW CLIENTS on pgb1, first in both nodes' host list)
and its backends in pg_stat_activity on the database host are sampled. The most client connections the
node holds at once must be exactly the model's demand for it (AppNode.web_connections: workers x
threads, from the lab inventory through the toolkit's own reader): that is the app's own bound. The
most backends in a transaction must be the smaller of that demand and the plan's pool for pgb1: above
the pool, PgBouncer holds the rest of the clients waiting (app1's 12 against pool 10 on the lab). Every
request must end with 200: the requests above the bound wait, they are not refused. Measured figures
are printed (-s); times are never asserted.

Hold the lab lock: flock /tmp/toolkit-lab.lock pytest -m fleet tests/fleet/test_asgi_bound.py
"""

from __future__ import annotations

import json
import math
import subprocess
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.fleet.conftest import ROOT, Ssh, admin
from toolkit.adapters import inventory
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.models import AppNode
from toolkit.domain.sizing import plan

pytestmark = pytest.mark.fleet

DB_HOST = "db1"
PGBOUNCER = "pgb1"  # first in both app nodes' django_pgbouncer_hosts
DATABASE = "app"  # the demo's database on PgBouncer (inventory/lab pgbouncer_databases)
HOLD_MS = 3000
FACTOR = 3  # concurrent requests per connection the model allows the node
SAMPLE_S = 0.2
# Between two request starts: all n start within the first hold (n x STAGGER_S < HOLD_MS). gunicorn's
# gthread worker accepts every connection it can (up to worker_connections, 1000), so a burst sent at
# once is taken mostly by the first worker to wake (measured: 8 and 11 backends of 12 on app1); spaced
# out, every worker's accept gets its share, and each worker's threads are then the bound.
STAGGER_S = 0.05


class _ClientSampler(threading.Thread):
    """The most client connections from ``addr`` to the app database on pgb1 at once (SHOW CLIENTS)."""

    def __init__(self, pgbouncer_addr: str, addr: str, database: str) -> None:
        super().__init__(daemon=True)
        self.pgbouncer_addr, self.addr, self.database = pgbouncer_addr, addr, database
        self.most, self.samples, self.error = 0, 0, ""
        self.done = threading.Event()

    def run(self) -> None:
        try:
            with admin(self.pgbouncer_addr) as console:
                while not self.done.is_set():
                    rows = console.rows("SHOW CLIENTS")
                    n = sum(1 for r in rows if r["addr"] == self.addr and r["database"] == self.database)
                    self.most, self.samples = max(self.most, n), self.samples + 1
                    self.done.wait(SAMPLE_S)
        except Exception as exc:  # reported by the test through self.error
            self.error = f"{type(exc).__name__}: {exc}"


def _get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=120) as response:
            response.read()
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.monotonic() - started


def _sampler(node: str, seconds: int) -> subprocess.Popen[str]:
    """Count the node's backends in a transaction on the database host every SAMPLE_S, for ``seconds``."""
    query = (
        "SELECT count(*) FILTER (WHERE xact_start IS NOT NULL), count(*) FROM pg_stat_activity "
        f"WHERE application_name = '{node}' AND backend_type = 'client backend'"
    )
    script = f"while :; do psql -XAtF ' ' -c \"{query}\"; sleep {SAMPLE_S}; done\n"
    proc = subprocess.Popen(  # the script goes on stdin: no quoting through ssh
        [
            "ssh",
            "-F",
            str(ROOT / ".lab" / "fleet" / "ssh_config"),
            DB_HOST,
            f"sudo -n -u postgres timeout {seconds} sh -s",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(script)
    proc.stdin.close()
    return proc


def _measure(hostvars: dict[str, Any], node: AppNode, pgbouncer_pool: int) -> dict[str, Any]:
    demand = node.web_connections
    n = FACTOR * demand
    rounds = math.ceil(n / demand)
    vars_ = hostvars[node.name]
    url = f"http://{vars_['django_demo_bind']}:{vars_['django_demo_port']}/idle-transaction/?ms={HOLD_MS}"
    sampler = _sampler(node.name, seconds=rounds * HOLD_MS // 1000 + 12)
    clients = _ClientSampler(hostvars[PGBOUNCER]["ansible_host"], vars_["ansible_host"], DATABASE)
    clients.start()
    time.sleep(1.5)  # the sampler's first rows come before the first request
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as pool:
        futures = []
        for _ in range(n):
            futures.append(pool.submit(_get, url))
            time.sleep(STAGGER_S)
        answers = [f.result() for f in futures]
    wall = time.monotonic() - started
    clients.done.set()
    clients.join(10)
    assert clients.samples and not clients.error, (
        f"SHOW CLIENTS on {PGBOUNCER}: {clients.error}; run make lab"
    )
    with sampler:  # closes its pipes
        assert sampler.stdout is not None and sampler.stderr is not None
        out = sampler.stdout.read()  # until the remote timeout ends the loop (stderr stays tiny)
        err = sampler.stderr.read()
        sampler.wait(timeout=60)
    samples = [tuple(int(v) for v in line.split()) for line in out.splitlines() if line.strip()]
    assert samples, f"no samples of pg_stat_activity on {DB_HOST}: {err.strip()[-500:]}; run make lab"
    in_xact = [s[0] for s in samples]
    result = {
        "node": node.name,
        "server": node.server.value,
        "workers": node.workers,
        "threads": node.threads,
        "model_demand": demand,
        "requests": n,
        "statuses": sorted({a[0] for a in answers}),
        "max_clients_on_pgbouncer": clients.most,
        "pgbouncer_pool": pgbouncer_pool,
        "max_backends_in_transaction": max(in_xact),
        "max_backends_named": max(s[1] for s in samples),
        "samples": len(samples),
        "slowest_s": round(max(a[1] for a in answers), 1),
        "fastest_s": round(min(a[1] for a in answers), 1),
        "wall_s": round(wall, 1),
    }
    print(json.dumps(result))
    return result


@pytest.fixture(scope="module")
def measured(ssh: Ssh) -> dict[str, dict[str, Any]]:
    """Both nodes measured once, one after the other (the ssh fixture brings the fleet up)."""
    if not (ROOT / ".lab" / "app_password").exists():
        pytest.fail("the lab is not deployed: run make lab")
    data = inventory.load(str(ROOT / "inventory" / "lab"))
    hostvars = {name: dict(v) for name, v in data.hostvars.items()}
    topology = topology_from_inventory(data.groups, data.hostvars)
    # The plan's default_pool_size for pgb1 (what the lab deployed).
    pgb_pool = next(p for p in plan(topology).pgbouncer if p.host == PGBOUNCER).value("default_pool_size")
    return {node.name: _measure(hostvars, node, pgb_pool) for node in topology.app_nodes}


@pytest.mark.parametrize(("node", "server"), [("app2", "asgi"), ("app1", "wsgi_gthread")])
def test_backends_per_node_equal_the_models_demand_under_three_times_that_load(
    measured: dict[str, dict[str, Any]], node: str, server: str
) -> None:
    r = measured[node]
    assert r["server"] == server, r
    assert r["requests"] == FACTOR * r["model_demand"] > r["model_demand"], r
    assert r["max_clients_on_pgbouncer"] == r["model_demand"] == r["workers"] * r["threads"], r
    assert r["max_backends_in_transaction"] == min(r["model_demand"], r["pgbouncer_pool"]), r


@pytest.mark.parametrize("node", ["app2", "app1"])
def test_every_request_above_the_bound_waits_and_succeeds(
    measured: dict[str, dict[str, Any]], node: str
) -> None:
    assert measured[node]["statuses"] == [200], measured[node]

"""An ASGI node's Redis connections stay within its pool's bound under a burst (docs/sizing.md, "Redis
under load"; issue 14 §5).

Before the demo used ``SharedBlockingPool`` (a copy of toolkit.django.cache), Django's ``RedisCache``
under uvicorn built a connection pool per request and left each connection open until garbage
collection: a burst of 64 connections held 45 on app2 (planned 9) and filled redis1's maxclients. Here
``wrk`` sends BURST_FACTOR x the bound of concurrent GETs to app2's ``/cache/KEY/`` while CLIENT LIST on
its Redis is sampled as the ops user: app2's connections (app user, app2's address) must never pass
``workers x django_threads`` (the per-process pool bound, from the lab inventory through the toolkit's
own reader), every request must succeed and Redis must refuse nobody. Measured figures are printed (-s).

Hold the lab lock: flock /tmp/toolkit-lab.lock pytest -m fleet tests/fleet/test_redis_pool_bound.py
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
import redis

from lab.drills.http_load import Wrk, request
from tests.fleet.conftest import ROOT, Ssh
from toolkit.adapters import inventory
from toolkit.domain.inventory import topology_from_inventory

pytestmark = pytest.mark.fleet

NODE = "app2"
BURST_FACTOR = 8  # concurrent requests per connection the bound allows the node
BURST_S = 8
AFTER_S = 2.0  # sampling goes on this long after the burst: connections left behind would show
INTERVAL_S = 0.1


class Sampler(threading.Thread):
    """The most connections of ``user`` from ``address`` in CLIENT LIST, sampled until stopped."""

    def __init__(self, client: redis.Redis, user: str, address: str) -> None:
        super().__init__(daemon=True)
        self.client, self.user, self.address = client, user, address
        self.peak, self.samples, self.peak_all = 0, 0, 0
        self.errors: list[str] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                listed = self.client.client_list()
            except redis.exceptions.RedisError as exc:
                self.errors.append(str(exc))
            else:
                ips = [str(c.get("addr")).rpartition(":")[0] for c in listed if c.get("user") == self.user]
                self.peak, self.samples = max(self.peak, ips.count(self.address)), self.samples + 1
                self.peak_all = max(self.peak_all, len(ips))  # every node's: a full Redis fails requests
            self.done.wait(INTERVAL_S)


def _lab() -> dict[str, Any]:
    if not (ROOT / ".lab" / "redis_ops_password").exists():
        pytest.fail("the lab is not deployed: run make lab")
    data = inventory.load(str(ROOT / "inventory" / "lab"))
    hostvars = {name: dict(v) for name, v in data.hostvars.items()}
    node = next(n for n in topology_from_inventory(data.groups, data.hostvars).app_nodes if n.name == NODE)
    cache_host = hostvars[NODE]["django_redis_hosts"][0]  # the demo caches on the first
    return {"node": node, "vars": hostvars[NODE], "redis": hostvars[cache_host]}


def test_a_burst_on_the_asgi_node_keeps_its_redis_connections_within_the_pool_bound(ssh: Ssh) -> None:
    lab = _lab()
    node, hv, rv = lab["node"], lab["vars"], lab["redis"]
    assert node.server.value == "asgi", node
    bound = node.web_connections  # workers x django_threads: max_connections per process x processes
    url = f"http://{hv['django_demo_bind']}:{hv['django_demo_port']}/cache/pool-bound/"
    request(url, method="PUT", body="x" * 64)
    client = redis.Redis(
        host=str(rv["redis_listen_addr"]),
        port=int(rv.get("redis_listen_port", 6379)),
        username=str(rv.get("redis_ops_user", "toolkit")),
        password=(ROOT / ".lab" / "redis_ops_password").read_text().strip(),
        decode_responses=True,
        socket_timeout=5,
    )
    sampler = Sampler(client, str(rv.get("redis_app_user", "app")), str(hv["django_demo_bind"]))
    try:
        rejected_before = int(client.info("stats")["rejected_connections"])
        sampler.start()
        burst = Wrk(url, BURST_FACTOR * bound, BURST_S).result()
        time.sleep(AFTER_S)
        sampler.done.set()
        sampler.join(timeout=10)
        rejected = int(client.info("stats")["rejected_connections"]) - rejected_before
    finally:
        sampler.done.set()
        client.close()
    measured = {
        "node": NODE,
        "bound": bound,
        "plan_demand": node.demand,
        "connections": burst.connections,
        "requests": burst.requests,
        "errors": burst.errors,
        "peak_redis_connections": sampler.peak,
        "peak_app_connections_all_nodes": sampler.peak_all,
        "samples": sampler.samples,
        "rejected": rejected,
    }
    print(json.dumps(measured))
    assert sampler.samples > 0 and not sampler.errors, sampler.errors[:3]
    assert burst.requests > 0 and burst.errors == 0, measured
    assert 0 < sampler.peak <= bound <= node.demand, measured
    assert rejected == 0, measured

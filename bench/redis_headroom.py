"""Redis under load: clients and memory of the lab's Redis hosts during the drills, against the plan.

For each phase (the four drills of ``python -m lab.drills``, each run as a subprocess as an operator
would, plus ``cache-flood``: this bench's own ``wrk`` on every demo node's ``/cache/KEY/`` at
``--flood-connections`` per node, far above the threads a node has) it samples every Redis host of
``inventory/lab`` every ~100 ms as the ops user (``INFO clients``, ``INFO memory`` and ``CLIENT LIST``
in one round trip; password read from ``.lab/``, never printed) and keeps the peak
``connected_clients``, the peak of clients logged in as the app user, and the peak ``used_memory``;
``evicted_keys`` and ``rejected_connections`` are read before and after. The limits are the live
``maxclients`` and ``maxmemory`` (CONFIG GET) and the plan's client demand per host (``toolkit plan
--format json``). Phases run one at a time, each under the lab lock (``--lock``, taken by this bench:
do not wrap it in flock), ``--rounds`` times, interleaved; the table gives medians over the rounds.

The plan's claim (toolkit/domain/sizing.py, ``_size_redis``): ``maxclients = 2 x app clients + ops
slots``, "a leak shows before it hurts", i.e. the app alone never needs more than half of
``maxclients - ops slots``; the app's peak is at most the plan's client demand, and each node's at most
its own (``AppNode.demand``: processes x the per-process pool bound, the demo's SharedBlockingPool with
max_connections = django_threads, + Celery and extra clients).

Usage: ``python bench/redis_headroom.py [--phases all] [--rounds 3] [--seconds 5] [--out
bench/results]``. Results: redis_headroom.json (every sample's peak, per run) and redis_headroom.md.
Exit 0 when every phase ran and the app's peak stayed within the plan's demand on every host and for
every node, 1 when it did not, 3 when a drill or Redis could not be run or read.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import json
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fleet  # noqa: F401 (puts the checkout on sys.path, for lab.drills)
import redis
from machine import machine

from lab.drills.harness import Lab
from lab.drills.http_load import Wrk, request
from toolkit.adapters import inventory
from toolkit.domain.inventory import topology_from_inventory

ROOT = Path(__file__).resolve().parents[1]

PYTHON = sys.executable
INVENTORY = "inventory/lab"
DRILLS = ("pool-exhaustion", "orm-overfetch", "cache-divergence", "async-blocking")
FLOOD = "cache-flood"
PHASES = (*DRILLS, FLOOD)
INTERVAL_S = 0.1
DRILL_TIMEOUT_S = 600


@dataclass(frozen=True)
class RedisHost:
    """One Redis of the inventory: where it listens and the users the bench tells apart."""

    name: str
    address: str
    port: int
    ops_user: str
    app_user: str


@dataclass
class Peaks:
    """What a sampler saw on one host during one phase."""

    samples: int = 0
    clients: int = 0
    app_clients: int = 0
    used_memory: int = 0
    by_source: dict[str, int] = field(default_factory=dict)  # peak app clients per client address
    errors: list[str] = field(default_factory=list)


def redis_hosts(path: str = INVENTORY) -> list[RedisHost]:
    """The inventory's group ``redis``: listen address and port, ops and app user."""
    data = inventory.load(path)
    found = []
    for name in data.groups.get("redis", []):
        hv = data.hostvars.get(name, {})
        addr = str(hv.get("redis_listen_addr") or hv.get("ansible_host") or name).split()[0]
        found.append(
            RedisHost(
                name,
                addr,
                int(hv.get("redis_listen_port", 6379)),
                str(hv.get("redis_ops_user", "toolkit")),
                str(hv.get("redis_app_user", "app")),
            )
        )
    if not found:
        raise SystemExit(f"redis_headroom: no host in group 'redis' of {path}: run 'make lab'")
    return found


def _secret(name: str) -> str:
    path = ROOT / ".lab" / name
    if not path.is_file():
        raise SystemExit(f"redis_headroom: {path} is missing: deploy the lab first with 'make lab'")
    return path.read_text().strip()


def connect(host: RedisHost) -> redis.Redis:
    """A client logged in as the ops user (its password from .lab/)."""
    return redis.Redis(
        host=host.address,
        port=host.port,
        username=host.ops_user,
        password=_secret("redis_ops_password"),
        decode_responses=True,
        socket_timeout=5,
    )


def counters(host: RedisHost, patience_s: float = 120.0) -> dict[str, int | float]:
    """The live limits and the running totals this bench compares before and after a phase.

    Redis counts the ops user's connection against maxclients like any other: while the app holds
    every slot, the ops user is refused too. It retries every 0.5 s for up to ``patience_s`` and
    reports how long it was refused (``ops_refused_s``).
    """
    started = time.monotonic()
    while True:
        client = connect(host)
        try:
            info = client.info()
            maxclients = int(str(client.config_get("maxclients")["maxclients"]))
            break
        except redis.exceptions.ConnectionError as exc:
            if "max number of clients" not in str(exc) or time.monotonic() - started > patience_s:
                raise SystemExit(f"redis_headroom: {host.name} ({host.address}): {exc}") from None
            time.sleep(0.5)
        finally:
            client.close()
    return {
        "ops_refused_s": round(time.monotonic() - started, 1),
        "maxclients": maxclients,
        "maxmemory": int(info["maxmemory"]),
        "evicted_keys": int(info["evicted_keys"]),
        "rejected_connections": int(info["rejected_connections"]),
        "used_memory": int(info["used_memory"]),
    }


class Sampler(threading.Thread):
    """Polls one Redis every INTERVAL_S until stopped; its own connection is one of the clients."""

    def __init__(self, host: RedisHost) -> None:
        super().__init__(daemon=True, name=f"sample-{host.name}")
        self.host, self.peaks, self._stop_event = host, Peaks(), threading.Event()

    def run(self) -> None:
        """Sample until stop(); a failed sample is recorded, not raised."""
        client = connect(self.host)
        try:
            while not self._stop_event.is_set():
                try:
                    pipe = client.pipeline(transaction=False)
                    pipe.info("clients")
                    pipe.info("memory")
                    pipe.client_list()
                    clients, memory, listed = pipe.execute()
                except (redis.exceptions.RedisError, OSError) as exc:
                    self.peaks.errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    p = self.peaks
                    p.samples += 1
                    p.clients = max(p.clients, int(clients["connected_clients"]))
                    app = [c for c in listed if c.get("user") == self.host.app_user]
                    p.app_clients = max(p.app_clients, len(app))
                    now: dict[str, int] = {}
                    for c in app:
                        source = str(c.get("addr", "?")).rsplit(":", 1)[0]
                        now[source] = now.get(source, 0) + 1
                    for source, n in now.items():
                        p.by_source[source] = max(p.by_source.get(source, 0), n)
                    p.used_memory = max(p.used_memory, int(memory["used_memory"]))
                self._stop_event.wait(INTERVAL_S)
        finally:
            client.close()

    def stop(self) -> Peaks:
        """Stop sampling and return the peaks."""
        self._stop_event.set()
        self.join(timeout=10)
        return self.peaks


@contextlib.contextmanager
def lab_lock(path: str) -> Iterator[None]:
    """Hold the shared lab lock (flock) for one phase."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _drill(name: str, seconds: float) -> dict[str, Any]:
    proc = subprocess.run(  # noqa: S603 (fixed argv)
        [PYTHON, "-m", "lab.drills", name, "--seconds", str(seconds), "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=DRILL_TIMEOUT_S,
        check=False,
    )
    if proc.returncode not in (0, 2):
        raise SystemExit(
            f"redis_headroom: drill {name} exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
        )
    return {"exit": proc.returncode}


def _flood(lab: Lab, seconds: float, connections: int) -> dict[str, Any]:
    key = "redis-headroom"
    for node in lab.nodes:
        request(f"{node.url}/cache/{key}/", method="PUT", body="x" * 64)
    loads = [Wrk(f"{node.url}/cache/{key}/", connections, seconds) for node in lab.nodes]
    results = [w.result() for w in loads]
    return {
        "exit": 0,
        "ok_rps": round(sum(r.ok_rps for r in results), 1),
        "errors": sum(r.errors for r in results),
    }


def run_phase(
    phase: str, hosts: list[RedisHost], seconds: float, flood_connections: int, lab: Lab
) -> dict[str, Any]:
    """Run one phase with a sampler on every Redis host; return its peaks and counter deltas."""
    before = {h.name: counters(h) for h in hosts}
    samplers = [Sampler(h) for h in hosts]
    for s in samplers:
        s.start()
    started = time.monotonic()
    try:
        outcome = _flood(lab, seconds, flood_connections) if phase == FLOOD else _drill(phase, seconds)
    finally:
        peaks = {s.host.name: s.stop() for s in samplers}
    took = time.monotonic() - started
    after = {h.name: counters(h) for h in hosts}
    names = {node.address: node.name for node in lab.nodes}
    per_host = {}
    for h in hosts:
        p, b, a = peaks[h.name], before[h.name], after[h.name]
        per_host[h.name] = {
            "samples": p.samples,
            "sample_errors": p.errors[:3],
            # the sampler's own connection is one of connected_clients
            "peak_clients": p.clients,
            "peak_app_clients": p.app_clients,
            "peak_app_clients_by_node": {names.get(a, a): n for a, n in sorted(p.by_source.items())},
            "peak_used_memory": p.used_memory,
            "maxclients": a["maxclients"],
            "maxmemory": a["maxmemory"],
            "evicted_keys": a["evicted_keys"] - b["evicted_keys"],
            "rejected_connections": a["rejected_connections"] - b["rejected_connections"],
            "ops_refused_after_s": a["ops_refused_s"],
        }
    return {"phase": phase, "seconds": round(took, 1), **outcome, "hosts": per_host}


def app_clients(host: RedisHost) -> int | None:
    """How many connections of the app user the host has now; None while the ops user is refused."""
    client = connect(host)
    try:
        return sum(1 for c in client.client_list() if c.get("user") == host.app_user)
    except redis.exceptions.ConnectionError:
        return None
    finally:
        client.close()


def release(
    hosts: list[RedisHost], plan: dict[str, dict[str, Any]], lab: Lab, wait_s: float = 30.0
) -> list[str]:
    """Leave the lab as found: free the app connections a flood left above the plan.

    An ASGI node keeps a flood's connections until its garbage collector runs, which can hold every
    maxclients slot, the ops user's included, for minutes. After ``wait_s`` the ASGI nodes' units are
    restarted (the only way in while Redis refuses every login); returns the units restarted.
    """

    def over(h: RedisHost) -> bool:
        n = app_clients(h)
        return n is None or n > plan[h.name]["client_demand"]

    deadline = time.monotonic() + wait_s
    while any(over(h) for h in hosts) and time.monotonic() < deadline:
        time.sleep(2)
    if not any(over(h) for h in hosts):
        return []
    units = [f"toolkit-demo-{n.name}" for n in lab.nodes if n.server.startswith("asgi")]
    for node, unit in zip([n for n in lab.nodes if n.server.startswith("asgi")], units, strict=True):
        lab.ssh(node.name, f"sudo -n systemctl restart {unit}")
    return units


def plan_demand() -> dict[str, dict[str, Any]]:
    """The plan's client demand and maxclients per Redis host (``toolkit plan --format json``)."""
    proc = subprocess.run(  # noqa: S603 (fixed argv)
        [str(Path(PYTHON).parent / "toolkit"), "plan", "-i", INVENTORY, "--format", "json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"redis_headroom: toolkit plan exited {proc.returncode}: {proc.stderr.strip()}")
    return {
        name: {
            "client_demand": r["client_demand"],
            "maxclients": r["settings"]["maxclients"],
            "reason": r["reasons"]["maxclients"],
        }
        for name, r in json.loads(proc.stdout)["redis"].items()
    }


def node_demand(path: str = INVENTORY) -> dict[str, int]:
    """Each app node's planned Redis clients (the model's ``AppNode.demand``)."""
    data = inventory.load(path)
    return {n.name: n.demand for n in topology_from_inventory(data.groups, data.hostvars).app_nodes}


def summarise(
    runs: list[dict[str, Any]], plan: dict[str, dict[str, Any]], per_node: dict[str, int]
) -> list[dict[str, Any]]:
    """One row per (phase, host): medians over the rounds, and the maxima of the counters."""
    rows = []
    for phase in dict.fromkeys(r["phase"] for r in runs):
        mine = [r for r in runs if r["phase"] == phase]
        for host in mine[0]["hosts"]:
            cells = [r["hosts"][host] for r in mine]
            demand = plan[host]["client_demand"]
            maxclients = cells[-1]["maxclients"]
            app_peak = statistics.median(c["peak_app_clients"] for c in cells)
            nodes = sorted({n for c in cells for n in c["peak_app_clients_by_node"]})
            by_node = {
                n: statistics.median(c["peak_app_clients_by_node"].get(n, 0) for c in cells) for n in nodes
            }
            rows.append(
                {
                    "phase": phase,
                    "host": host,
                    "rounds": len(cells),
                    "peak_clients": statistics.median(c["peak_clients"] for c in cells),
                    "peak_app_clients": app_peak,
                    "peak_app_clients_by_node": by_node,
                    "max_app_clients": max(c["peak_app_clients"] for c in cells),
                    "plan_demand": demand,
                    "maxclients": maxclients,
                    "app_share_of_maxclients": round(app_peak / maxclients, 3),
                    "peak_used_mb": round(statistics.median(c["peak_used_memory"] for c in cells) / 2**20, 2),
                    "maxmemory_mb": round(cells[-1]["maxmemory"] / 2**20),
                    "evicted_keys": sum(c["evicted_keys"] for c in cells),
                    "rejected_connections": sum(c["rejected_connections"] for c in cells),
                    "ops_refused_after_s": max(c["ops_refused_after_s"] for c in cells),
                    "samples": statistics.median(c["samples"] for c in cells),
                    "within_demand": all(c["peak_app_clients"] <= demand for c in cells)
                    and all(
                        n <= per_node.get(k, 0)
                        for c in cells
                        for k, n in c["peak_app_clients_by_node"].items()
                    ),
                }
            )
    return rows


HEADER = (
    "| phase | host | peak clients | peak app (by node) | plan app clients | maxclients | app / maxclients | "
    "peak used MiB | maxmemory MiB | evicted | rejected | ops refused after, s | samples |"
)


def table(rows: list[dict[str, Any]]) -> list[str]:
    """The Markdown table of the medians."""
    lines = [HEADER, "| --- | --- |" + " ---: |" * 11]
    for r in rows:
        by_node = ", ".join(f"{n} {v:g}" for n, v in r["peak_app_clients_by_node"].items())
        split = f" ({by_node})" if by_node else ""
        lines.append(
            f"| {r['phase']} | {r['host']} | {r['peak_clients']:g} | {r['peak_app_clients']:g}{split} | "
            f"{r['plan_demand']} | {r['maxclients']} | {r['app_share_of_maxclients']:.0%} | "
            f"{r['peak_used_mb']:.2f} | {r['maxmemory_mb']} | {r['evicted_keys']} | "
            f"{r['rejected_connections']} | {r['ops_refused_after_s']:g} | {r['samples']:g} |"
        )
    return lines


def main() -> int:
    """Parse, run every phase round by round under the lab lock, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phases", default="all", help=f"comma-separated, of {', '.join(PHASES)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load phase")
    parser.add_argument("--flood-connections", type=int, default=64, help="wrk connections per node")
    parser.add_argument("--lock", default="/tmp/toolkit-lab.lock", help="the lab lock, held per phase")  # noqa: S108
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="directory for the results")
    args = parser.parse_args()
    phases = (
        list(PHASES) if args.phases == "all" else [p.strip() for p in args.phases.split(",") if p.strip()]
    )
    unknown = [p for p in phases if p not in PHASES]
    if unknown or not phases or args.rounds < 1 or args.seconds < 1 or args.flood_connections < 1:
        parser.error(f"--phases from {', '.join(PHASES)}; --rounds, --seconds, --flood-connections >= 1")
    hosts, lab, plan = redis_hosts(), Lab.load(INVENTORY), plan_demand()
    runs = []
    for rnd in range(args.rounds):
        for phase in phases:
            with lab_lock(args.lock):
                try:
                    run = run_phase(phase, hosts, args.seconds, args.flood_connections, lab)
                finally:
                    restarted = release(hosts, plan, lab) if phase == FLOOD else []
                run["restarted_after"] = restarted
            run["round"] = rnd + 1
            runs.append(run)
            peaks = ", ".join(f"{h} {v['peak_app_clients']} app" for h, v in run["hosts"].items())
            ended = "".join(f"; restarted {u} to free Redis" for u in run.get("restarted_after", []))
            print(
                f"round {rnd + 1} {phase}: {run['seconds']} s, exit {run['exit']}, {peaks}{ended}", flush=True
            )
    nodes = node_demand()
    rows = summarise(runs, plan, nodes)
    now = dt.datetime.now(dt.UTC)
    command = "python bench/redis_headroom.py " + " ".join(sys.argv[1:])
    lines = [
        f"# Redis under load ({now:%Y-%m-%d}, {machine()})",
        "",
        f"`{command}`: medians over {args.rounds} round(s); evicted and rejected are totals over the "
        "rounds; peak clients includes the bench's own sampler (1 per host).",
        "",
        *table(rows),
        "",
        *[f"plan {h}: maxclients {p['maxclients']} = {p['reason']}" for h, p in plan.items()],
        "plan per node: " + ", ".join(f"{n} {d}" for n, d in nodes.items()),
        "restarted after a flood: "
        + (", ".join(f"round {r['round']} {u}" for r in runs for u in r["restarted_after"]) or "none"),
    ]
    print("\n".join(lines))
    doc = {
        "schema": {"name": "bench.redis_headroom", "version": 1},
        "meta": {"date": f"{now:%Y-%m-%d}", "machine": machine(), "command": command, "rounds": args.rounds},
        "plan": plan,
        "plan_per_node": nodes,
        "summary": rows,
        "runs": runs,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "redis_headroom.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out / "redis_headroom.md").write_text("\n".join(lines) + "\n")
    print(f"written: {out / 'redis_headroom.json'}, .md")
    return 0 if all(r["within_demand"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

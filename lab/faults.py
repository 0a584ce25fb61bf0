"""Faults over the lab's real network: for each fault, doctor's finding, its exit code and wall time, and
the share of app requests that succeed while the fault lasts; then the lab must be healthy again.

    python -m lab.faults [--only NAME ...] [--json PATH] [--load-seconds S]

Run as root from the checkout, with the fleet up and deployed (`make lab`). Faults (lab/faults_ops.py):
link-down, pgbouncer-frozen, power-off, partition, pgbouncer-stopped. While a PgBouncer host is stopped
the runner also samples the other host's pools (lab/faults_pools.py) against the database's budget.

The run holds the lab lock (/tmp/toolkit-lab.lock) throughout: a caller that already holds it (for
example `flock /tmp/toolkit-lab.lock pytest ...`) passes its descriptor down and the run reuses it.
Every fault is removed in a `finally`, and the whole lab is healed before and after the run (links up,
nft tables gone, PgBouncer continued and started, hosts booted), also on SIGINT or SIGTERM.
Exit codes: 0 every fault diagnosed and recovered from, 2 otherwise, 64 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lab import faults_ops as ops
from lab import faults_pools as pools
from lab import faults_probe as probe
from lab.fleet_spec import Fleet

LOCK = Path("/tmp/toolkit-lab.lock")  # noqa: S108 (the lab lock every lab command shares)
LOAD_SECONDS = 10.0
RECOVERY_SECONDS = {"power-off": 240.0}
RECOVERY_DEFAULT = 90.0
FULL_DEMAND_CLIENTS = 12


@contextlib.contextmanager
def lab_lock() -> Iterator[None]:
    """Hold the lab lock: an inherited descriptor of it (the caller holds it) or a new one, waited for."""
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == str(LOCK):
                fcntl.flock(int(name), fcntl.LOCK_EX | fcntl.LOCK_NB)
                yield
                return
    with open(LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"faults: waiting for the lab lock {LOCK}", flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def heal(fleet: Fleet) -> None:
    """Undo whatever any fault (or a killed run) left: boot hosts, links up, nft tables gone, PgBouncer on."""
    if any(ops.nspawn_pid(h) is None for h in fleet.hosts):
        ops.run([sys.executable, str(ops.ROOT / "lab" / "fleet.py"), "up"], "lab/fleet.py up", 600)
    for host in fleet.hosts:
        ops.link_down(host).remove()
        ops.partition(host).remove()
    for name in ops.PGBOUNCER_UNITS:
        host = next(h for h in fleet.hosts if h.name == name)
        ops.ssh(name, f"sudo -n systemctl kill -s CONT {ops.units(host)}", "SIGCONT", check=False)
        ops.ssh(name, f"sudo -n systemctl start {ops.units(host)}", "starting PgBouncer")


def findings_text(about: dict[str, Any]) -> str:
    parts = list(about["findings"])
    target = about["target"]
    if target and not target["ok"]:
        parts.insert(0, f"target UNKNOWN ({target['cause']})")
    return "; ".join(parts) or "none"


def run_fault(fault: ops.Fault, baseline: probe.Doctor, fleet: Fleet, seconds: float) -> dict[str, Any]:
    address = str(fault.host.address)
    record: dict[str, Any] = {"fault": fault.name, "target": fault.host.name, "what": fault.what}
    other = next((h for h in fleet.hosts if h.name in ops.PGBOUNCER_UNITS and h != fault.host), None)
    sampler: pools.Sampler | None = None
    try:
        fault.apply()
        time.sleep(1.0)
        if fault.name == "pgbouncer-stopped" and other is not None:
            processes = len(ops.PGBOUNCER_UNITS[other.name])
            sampler = pools.Sampler(str(other.address), processes)
        loaded: list[probe.Load] = []
        # With a PgBouncer host stopped the survivor gets the tier's whole client demand (the plan's
        # client_demand: 12 threads on app1 + 8 slots on app2, rounded to 12 clients per node).
        clients = FULL_DEMAND_CLIENTS if sampler is not None else probe.CLIENTS_PER_NODE
        worker = threading.Thread(target=lambda: loaded.append(probe.load(seconds, clients)))
        with sampler or contextlib.nullcontext():
            worker.start()
            seen = probe.doctor()
            worker.join()
        about = seen.about(address)
        record["doctor"] = {
            "exit_code": seen.exit_code,
            "documented_exit": seen.documented_exit(),
            "wall_s": seen.wall_s,
            "status": seen.status,
            "on_target": about,
            "text": findings_text(about),
            "new": sorted(f"{i} @ {t}" for i, t in seen.keys() - baseline.keys()),
        }
        record["requests"] = {**loaded[0].summary(), "clients": len(probe.APPS) * clients}
        if sampler is not None and other is not None:
            record["headroom"] = {"budget": pools.budget(), "survivor": other.name, **sampler.report()}
    except (ops.FaultError, RuntimeError, OSError) as exc:
        record["error"] = str(exc)
    finally:
        started = time.monotonic()
        fault.remove()
        if other is not None and fault.host.name in ops.PGBOUNCER_UNITS:
            # The survivor took the load and keeps min_pool_size server connections per process from it
            # for server_idle_timeout; a restart gives it back its pools as they were before the fault.
            ops.ssh(other.name, f"sudo -n systemctl restart {ops.units(other)}", "restarting PgBouncer")
            record["survivor_restarted"] = other.name
        record["restore_s"] = round(time.monotonic() - started, 1)
    record["recovery"] = probe.wait_healthy(baseline, RECOVERY_SECONDS.get(fault.name, RECOVERY_DEFAULT))
    return record


def passed(record: dict[str, Any]) -> bool:
    doc = record.get("doctor")
    if "error" in record or doc is None:
        return False
    target = doc["on_target"]["target"]
    reported = bool(doc["on_target"]["findings"]) or (target is not None and not target["ok"])
    return reported and doc["exit_code"] == doc["documented_exit"] and bool(record["recovery"]["healthy"])


def table(records: list[dict[str, Any]]) -> str:
    head = (
        "fault",
        "target",
        "doctor's finding(s) on the target",
        "exit",
        "doctor s",
        "requests ok",
        "p50/max s",
        "healthy after",
    )
    lines = [head]
    for r in records:
        doc, req, rec = r.get("doctor", {}), r.get("requests", {}), r["recovery"]
        lines.append(
            (
                r["fault"],
                r["target"],
                doc.get("text", r.get("error", "?")),
                str(doc.get("exit_code", "?")),
                f"{doc.get('wall_s', 0):.1f}",
                f"{req.get('ok', 0)}/{req.get('total', 0)} ({100 * req.get('share', 0):.1f}%)",
                f"{req.get('p50_s')}/{req.get('max_s')}",
                f"{'yes' if rec['healthy'] else 'NO'} "
                f"({r.get('restore_s', 0):.0f} s restore + {rec['seconds']:.0f} s)",
            )
        )
    return "\n".join(
        "| " + " | ".join(cells) + " |" for cells in [lines[0], tuple("---" for _ in head), *lines[1:]]
    )


def headroom_text(records: list[dict[str, Any]]) -> str:
    out = []
    for r in records:
        h = r.get("headroom")
        if not h:
            continue
        b = h["budget"]
        out.append(
            f"headroom: {r['target']} stopped, {h['survivor']} carried the load: peak server connections per "
            f"process (peer_id: n) {h['peak_server_connections_per_process']}, peak clients "
            f"{h['peak_clients_per_process']}, waiting {h['peak_waiting_per_process']}; PostgreSQL's app "
            f"backends by client address (peak) {h['peak_app_backends_by_client_addr']}, total "
            f"{h['peak_app_backends_total']}; {h['survivor']}'s cap {b['caps'][h['survivor']]} "
            f"({b['processes'][h['survivor']]} process(es) x max_db_connections); budget: max_connections "
            f"{b['max_connections']} - reserved {b['reserved']} = {b['max_minus_reserved']}, "
            f"usable after bypass slots {b['usable']}; {h['samples']} samples"
            + (f"; sampler error: {h['error']}" if h["error"] else "")
        )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lab.faults", description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", choices=sorted(ops.MAKERS), help="run only this fault")
    parser.add_argument("--json", type=Path, help="write the records as JSON to PATH")
    parser.add_argument("--load-seconds", type=float, default=LOAD_SECONDS, help="load window per fault")
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print(
            "faults: run as root (namespaces, nft, the hosts' processes): "
            "sudo .venv/bin/python -m lab.faults",
            file=sys.stderr,
        )
        return 64

    def stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    fleet = ops.load_fleet()
    records: list[dict[str, Any]] = []
    with lab_lock():
        started = time.monotonic()
        try:
            heal(fleet)
            baseline = probe.doctor()
            warm = probe.wait_healthy(baseline, 60)
            if not warm["healthy"]:
                print(
                    f"faults: the lab is not healthy before any fault ({warm}): run 'make lab'",
                    file=sys.stderr,
                )
                return 2
            print(
                f"faults: baseline doctor exit {baseline.exit_code}, {len(baseline.findings)} finding(s)",
                flush=True,
            )
            for fault in ops.plan(fleet, args.only):
                print(f"faults: {fault.name} on {fault.host.name}: {fault.what}", flush=True)
                record = run_fault(fault, baseline, fleet, args.load_seconds)
                records.append(record)
                print(f"faults: {json.dumps(record, sort_keys=True)}", flush=True)
        except KeyboardInterrupt as exc:
            print(f"faults: interrupted ({exc or 'SIGINT'}); the lab is being healed", file=sys.stderr)
            return 2
        finally:
            heal(fleet)
    print(table(records))
    print(f"faults: {len(records)} fault(s) in {time.monotonic() - started:.0f} s (with the lab lock held)")
    extra = headroom_text(records)
    if extra:
        print(extra)
    if args.json:
        args.json.write_text(
            json.dumps({"baseline_exit": baseline.exit_code, "faults": records}, indent=2) + "\n"
        )
    return 0 if records and all(passed(r) for r in records) else 2


if __name__ == "__main__":
    sys.exit(main())

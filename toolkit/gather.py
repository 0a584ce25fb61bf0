"""Read every target concurrently, each within its own deadline, into one :class:`Snapshot`.

Each target is read in its own daemon thread. A target that does not answer in time (a frozen
process accepts TCP connections and then says nothing) is reported as timed out, and its thread is
abandoned: it can neither delay the other targets nor keep the process alive at exit. The total time
is about the slowest target's, not the sum.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, assert_never

from toolkit.adapters import pgbouncer, postgres, redis_state
from toolkit.adapters.errors import TargetError
from toolkit.adapters.secrets import Secrets
from toolkit.domain.django import DjangoProfile
from toolkit.domain.errors import SizingError
from toolkit.domain.models import Topology
from toolkit.domain.plan import Plan
from toolkit.domain.snapshot import PgBouncerState, PostgresState, RedisState, Snapshot, TargetStatus
from toolkit.domain.targets import Endpoint, EndpointKind


@dataclass
class _Slot:
    result: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


def _reader(endpoint: Endpoint, secrets: Secrets, timeout: float, process: int = 0) -> Callable[[], Any]:
    password = secrets.password(endpoint.kind)
    match endpoint.kind:  # exhaustive (mypy checks it): a new kind needs its reader here
        case EndpointKind.PGBOUNCER:
            admin = pgbouncer.AdminTarget(
                endpoint.address, endpoint.port, endpoint.user, password or "", endpoint.name, process
            )
            return lambda: pgbouncer.read_state(admin, timeout)
        case EndpointKind.POSTGRES:
            pg = postgres.PostgresTarget(
                endpoint.address, endpoint.port, endpoint.user, password or "", endpoint.dbname
            )
            return lambda: postgres.read_state(pg, timeout)
        case EndpointKind.REDIS:
            rt = redis_state.RedisTarget(
                endpoint.name, endpoint.address, endpoint.port, endpoint.user, password, endpoint.key_prefix
            )
            return lambda: redis_state.read_state(rt, timeout)
        case unknown:
            assert_never(unknown)


def read_all(
    endpoints: Sequence[Endpoint],
    secrets: Secrets,
    timeout: float,
    processes: Mapping[str, int] | None = None,
) -> tuple[list[TargetStatus], list[Any]]:
    """Read every endpoint concurrently; return each one's status and the states that were read.

    With ``processes`` (PgBouncer host -> processes sharing its port), each process of a host that
    runs several is read on its own: its admin session reconnects until the kernel hands it that
    process (toolkit/adapters/pgbouncer.py), and its status's address ends in ``process N``.
    """
    jobs = [
        (endpoint, n)
        for endpoint in endpoints
        for n in (
            range(1, processes.get(endpoint.name, 1) + 1)
            if processes and endpoint.kind == "pgbouncer" and processes.get(endpoint.name, 1) > 1
            else (0,)
        )
    ]
    slots: list[_Slot] = []
    for endpoint, process in jobs:
        slot = _Slot()
        read = _reader(endpoint, secrets, timeout, process)

        def work(read: Callable[[], Any] = read, slot: _Slot = slot) -> None:
            start = time.monotonic()
            try:
                slot.result = read()
            except BaseException as exc:  # reported per target, never raised across threads
                slot.error = exc
            finally:
                slot.elapsed = time.monotonic() - start
                slot.done.set()

        threading.Thread(target=work, name=f"gather-{endpoint.label}", daemon=True).start()
        slots.append(slot)

    deadline = time.monotonic() + timeout + 0.5
    statuses: list[TargetStatus] = []
    states: list[Any] = []
    for (endpoint, process), slot in zip(jobs, slots, strict=True):
        finished = slot.done.wait(max(0.0, deadline - time.monotonic()))
        status = _status(endpoint, slot, finished, timeout)
        if process:
            status = replace(status, address=f"{status.address} process {process}")
        statuses.append(status)
        if finished and slot.error is None:
            result = slot.result
            if process and isinstance(result, PgBouncerState):  # findings name the process
                result = replace(result, address=f"{result.address} process {process}")
            states.append(result)
    return statuses, states


def _status(endpoint: Endpoint, slot: _Slot, finished: bool, timeout: float) -> TargetStatus:
    kind, name, address = endpoint.kind, endpoint.name, f"{endpoint.address}:{endpoint.port}"
    if not finished:
        cause = f"timed out after {timeout:g} s"
        message = f"{endpoint.label}: {cause}; is the server frozen or overloaded?"
        return TargetStatus(name, kind, address, False, timeout, cause, message)
    if slot.error is None:
        return TargetStatus(name, kind, address, True, slot.elapsed)
    if isinstance(slot.error, TargetError):
        return TargetStatus(name, kind, address, False, slot.elapsed, slot.error.cause, str(slot.error))
    first = str(slot.error).strip().splitlines()[0] if str(slot.error).strip() else ""
    message = f"{endpoint.label}: {type(slot.error).__name__}: {first}"
    return TargetStatus(name, kind, address, False, slot.elapsed, "error", message)


def snapshot(
    topology: Topology,
    plan: Plan | None,
    plan_error: SizingError | None,
    endpoints: Sequence[Endpoint],
    secrets: Secrets,
    timeout: float,
    django: DjangoProfile | None = None,
    offline: bool = False,
    processes: Mapping[str, int] | None = None,
) -> Snapshot:
    """Gather the live state (unless offline) into one Snapshot.

    With ``processes``, each process of a PgBouncer host that runs several on one port is a target
    of its own (a server connection of one process is invisible to the others' SHOW SERVERS).
    """
    statuses: list[TargetStatus] = []
    states: list[Any] = []
    if not offline:
        statuses, states = read_all(endpoints, secrets, timeout, processes)
    return Snapshot(
        topology=topology,
        plan=plan,
        plan_error=plan_error,
        targets=tuple(statuses),
        pgbouncer=tuple(s for s in states if isinstance(s, PgBouncerState)),
        postgres=next((s for s in states if isinstance(s, PostgresState)), None),
        redis=tuple(s for s in states if isinstance(s, RedisState)),
        django=django,
        offline=offline,
    )

"""Read every target concurrently, each within its own deadline, into one :class:`Snapshot`.

Every read runs on the deadline runner (toolkit/adapters/deadline.py): a target that does not answer
in time (a frozen process accepts TCP connections and then says nothing) is reported as timed out,
and its thread is abandoned. It can neither delay the other targets nor keep the process alive at
exit. The app nodes' Django settings are read in the same pass as the servers, so the total time is
about the slowest target's, not the sum.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, assert_never

from toolkit.adapters import deadline, pgbouncer, postgres, redis_state, ssh
from toolkit.adapters.deadline import Job, Outcome
from toolkit.adapters.errors import TargetError
from toolkit.adapters.secrets import Secrets
from toolkit.domain.django import DjangoProfile
from toolkit.domain.django_nodes import DjangoSource, django_sources
from toolkit.domain.errors import InventoryError, SizingError
from toolkit.domain.models import Topology
from toolkit.domain.plan import Plan
from toolkit.domain.snapshot import PgBouncerState, PostgresState, RedisState, Snapshot, TargetStatus
from toolkit.domain.targets import Endpoint, EndpointKind

GRACE = 0.5  # seconds past --timeout before a read is abandoned (the drivers' own timeouts come first)
NODE_TIMEOUT = 10.0  # at least: importing settings starts an interpreter and Django, over SSH
NODES_AT_ONCE = 8  # app nodes read at the same time (each is an ssh or a Python process)


@dataclass(frozen=True)
class DjangoNodes:
    """The app nodes whose settings are read (those with ``django_settings_module``) and how."""

    sources: tuple[DjangoSource, ...]
    remote: Mapping[str, ssh.SshTarget]  # node -> its SSH connection; a node not here is read locally
    timeout: float


def django_nodes(
    topology: Topology, hostvars: Mapping[str, Mapping[str, Any]], source: str, timeout: float
) -> DjangoNodes | None:
    """The app nodes to read, or None; an unusable SSH variable raises InventoryError before any read.

    A node on another host is read there over SSH; one on this machine (``ansible_connection:
    local`` or a loopback address) with a local interpreter.
    """
    sources = django_sources([n.name for n in topology.app_nodes], hostvars)
    if not sources:
        return None
    base = ssh.inventory_dir(source)
    remote = {
        s.node: ssh.ssh_target(s.node, hostvars.get(s.node, {}), base)
        for s in sources
        if not ssh.is_local(s.node, hostvars.get(s.node, {}))
    }
    return DjangoNodes(tuple(sources), remote, max(timeout, NODE_TIMEOUT))


def _node_jobs(nodes: DjangoNodes) -> list[Job[DjangoProfile]]:
    from toolkit.adapters.django_settings import read_node  # noqa: PLC0415 - only when there are nodes

    return [
        Job(
            f"django:{src.node}",
            lambda src=src: read_node(src, nodes.timeout, nodes.remote.get(src.node)),  # type: ignore[misc]
            nodes.timeout + 2 * GRACE,  # the probe's own time limit comes first, with its message
            "reading the Django settings",
        )
        for src in nodes.sources
    ]


def _node_results(
    nodes: DjangoNodes, outcomes: Sequence[Outcome[DjangoProfile]]
) -> tuple[dict[str, DjangoProfile], list[TargetStatus]]:
    profiles: dict[str, DjangoProfile] = {}
    statuses: list[TargetStatus] = []
    for src, outcome in zip(nodes.sources, outcomes, strict=True):
        name, where, error = outcome.job.name, f"{src.node}:{src.settings_module}", outcome.error
        if error is None:
            profiles[src.node] = outcome.result()
            statuses.append(TargetStatus(name, "django", where, True, outcome.elapsed))
        elif isinstance(error, InventoryError):
            statuses.append(TargetStatus(name, "django", where, False, outcome.elapsed, "error", error.why))
        elif isinstance(error, TargetError):
            statuses.append(
                TargetStatus(name, "django", where, False, outcome.elapsed, error.cause, str(error))
            )
        else:
            statuses.append(
                TargetStatus(name, "django", where, False, outcome.elapsed, "error", _line(error))
            )
    return profiles, statuses


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
    outcomes = deadline.run(
        [
            Job(endpoint.label, _reader(endpoint, secrets, timeout, process), timeout + GRACE)
            for endpoint, process in jobs
        ]
    )
    statuses: list[TargetStatus] = []
    states: list[Any] = []
    for (endpoint, process), outcome in zip(jobs, outcomes, strict=True):
        status = _status(endpoint, outcome, timeout)
        if process:
            status = replace(status, address=f"{status.address} process {process}")
        statuses.append(status)
        if outcome.error is None:
            result = outcome.value
            if process and isinstance(result, PgBouncerState):  # findings name the process
                result = replace(result, address=f"{result.address} process {process}")
            states.append(result)
    return statuses, states


def _line(error: BaseException) -> str:
    first = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first}"


def _status(endpoint: Endpoint, outcome: Outcome[Any], timeout: float) -> TargetStatus:
    kind, name, address = endpoint.kind, endpoint.name, f"{endpoint.address}:{endpoint.port}"
    error = outcome.error
    if outcome.timed_out:
        cause = f"timed out after {timeout:g} s"
        message = f"{endpoint.label}: {cause}; is the server frozen or overloaded?"
        return TargetStatus(name, kind, address, False, timeout, cause, message)
    if error is None:
        return TargetStatus(name, kind, address, True, outcome.elapsed)
    if isinstance(error, TargetError):
        return TargetStatus(name, kind, address, False, outcome.elapsed, error.cause, str(error))
    return TargetStatus(
        name, kind, address, False, outcome.elapsed, "error", f"{endpoint.label}: {_line(error)}"
    )


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
    nodes: DjangoNodes | None = None,
) -> Snapshot:
    """Gather the live state (unless offline) and the app nodes' settings into one Snapshot.

    With ``processes``, each process of a PgBouncer host that runs several on one port is a target
    of its own (a server connection of one process is invisible to the others' SHOW SERVERS).
    With ``nodes``, each app node's settings are read while the servers are (offline too); the
    first node's profile stands for ``django`` unless one is given.
    """
    reading = deadline.start(_node_jobs(nodes), limit=NODES_AT_ONCE) if nodes else None
    statuses: list[TargetStatus] = []
    states: list[Any] = []
    if not offline:
        statuses, states = read_all(endpoints, secrets, timeout, processes)
    profiles: dict[str, DjangoProfile] = {}
    if nodes and reading:
        profiles, node_statuses = _node_results(nodes, reading.wait())
        statuses = [*statuses, *node_statuses]
    return Snapshot(
        topology=topology,
        plan=plan,
        plan_error=plan_error,
        targets=tuple(statuses),
        pgbouncer=tuple(s for s in states if isinstance(s, PgBouncerState)),
        postgres=next((s for s in states if isinstance(s, PostgresState)), None),
        redis=tuple(s for s in states if isinstance(s, RedisState)),
        django=django if django is not None else next(iter(profiles.values()), None),
        django_nodes=profiles,
        offline=offline,
    )

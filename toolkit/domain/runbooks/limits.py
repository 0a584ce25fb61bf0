"""Plan for pgbouncer-raise-max-client-conn: a live SET of max_client_conn within the open-files limit.

Every client connection and every server connection of a PgBouncer process is a file descriptor, and
the process also needs some for its listening sockets, its log and its pidfile. So a process admits at
most ``fd_limit - server connections - slack`` clients, where the server connections are the pools'
``pools x (default_pool_size + reserve_pool_size)`` and the slack is the sizing's
(:data:`toolkit.domain.sizing.PGBOUNCER_FD_SLACK`): the same sum the plan's LimitNOFILE and doctor's
``capacity.fd_limit_too_low`` use. A value beyond it is refused before anything changes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from toolkit.domain.errors import RefusedError
from toolkit.domain.runbooks.base import Action, RunbookPlan, RunbookUsageError
from toolkit.domain.sizing import PGBOUNCER_FD_SLACK

RUNBOOK = "pgbouncer-raise-max-client-conn"


@dataclass(frozen=True)
class ProcessLimits:
    """What one PgBouncer process runs with now, and where its open-files limit was read."""

    label: str  # pgbouncer@ADDRESS:PORT [process N]
    host: str  # the inventory host
    max_client_conn: int  # live, SHOW CONFIG
    pools: int  # (database, user) pairs of the host, from the inventory
    pool_size: int  # live default_pool_size
    reserve: int  # live reserve_pool_size
    fd_limit: int | None  # the process's open-files limit (soft), None when unlimited or unknown
    fd_source: str  # where fd_limit comes from, for the plan's notes

    @property
    def server_connections(self) -> int:
        """Server connections the process may open: pools x (pool + reserve)."""
        return self.pools * (self.pool_size + self.reserve)

    @property
    def largest(self) -> int | None:
        """The largest max_client_conn the open-files limit admits (None: no limit known).

        >>> ProcessLimits("p", "h", 29, 1, 20, 5, 1024, "live").largest
        935
        """
        if self.fd_limit is None:
            return None
        return self.fd_limit - self.server_connections - PGBOUNCER_FD_SLACK


def parse_limits(text: str) -> int | None:
    """The soft ``Max open files`` of a ``/proc/PID/limits``, or systemd's ``LimitNOFILE`` value.

    None when the text says unlimited; ValueError when it holds neither.

    >>> parse_limits("Max cpu time  unlimited  unlimited  seconds\\nMax open files  1024  4096  files\\n")
    1024
    >>> parse_limits("65536"), parse_limits("infinity")
    (65536, None)
    >>> parse_limits("")
    Traceback (most recent call last):
    ...
    ValueError: no open-files limit in ''
    """
    for line in text.splitlines():
        if line.startswith("Max open files"):
            soft = line[len("Max open files") :].split()[0]
            return None if soft == "unlimited" else int(soft)
    word = text.strip().split(":")[0]  # systemd may print soft:hard
    if word == "infinity":
        return None
    if word.isdigit():
        return int(word)
    raise ValueError(f"no open-files limit in {text.strip()[:80]!r}")


def plan_raise(
    processes: Sequence[ProcessLimits], wanted: int | None, planned: Mapping[str, int]
) -> RunbookPlan:
    """SET max_client_conn on each process to ``wanted`` (or its host's planned value), within its limit.

    A value above a process's largest is refused (RefusedError, exit 2: nothing changed), naming the
    largest that fits. A process already at or above the value is left as it is (this runbook raises).

    >>> p = ProcessLimits("pgbouncer@a:6432", "a", 29, 1, 20, 5, 1024, "live /proc limits")
    >>> plan_raise([p], 100, {}).actions[0].args
    {'max_client_conn': 100, 'was': 29, 'largest': 935}
    >>> plan_raise([p], 936, {})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    toolkit.domain.errors.RefusedError: pgbouncer-raise-max-client-conn: refused, nothing changed: ... 935 ...
    >>> plan_raise([p], 20, {}).actions
    ()
    """
    if not processes:
        raise RunbookUsageError(f"{RUNBOOK}: no PgBouncer selected")
    too_big = []
    actions = []
    notes = []
    for p in processes:
        value = wanted if wanted is not None else planned.get(p.host)
        if value is None:
            raise RunbookUsageError(
                f"{RUNBOOK}: the plan has no max_client_conn for {p.host}: give --max-client-conn N"
            )
        largest = p.largest
        notes.append(
            f"{p.label}: open-files limit {p.fd_limit if p.fd_limit is not None else 'unlimited'} "
            f"({p.fd_source}) - {p.server_connections} server connections ({p.pools} pool(s) x "
            f"(pool {p.pool_size} + reserve {p.reserve})) - {PGBOUNCER_FD_SLACK} spare = largest "
            f"max_client_conn {largest if largest is not None else 'unbounded'}"
        )
        if largest is not None and value > largest:
            too_big.append(
                f"{p.label} admits at most {largest} (open-files limit {p.fd_limit}, {p.fd_source})"
            )
            continue
        if value <= p.max_client_conn:
            notes.append(
                f"{p.label}: max_client_conn is {p.max_client_conn} already, not below {value}: left as it "
                "is (pgbouncer-reload restores the file's value)"
            )
            continue
        actions.append(
            Action(
                p.label,
                "SET",
                {"max_client_conn": value, "was": p.max_client_conn, "largest": largest},
                f"admit {value - p.max_client_conn} more client(s), within the open-files limit",
            )
        )
    if too_big:
        raise RefusedError(
            f"{RUNBOOK}: refused, nothing changed: max_client_conn {wanted} does not fit the open-files "
            f"limit: {'; '.join(too_big)}; pass a smaller --max-client-conn, or raise LimitNOFILE and "
            "restart PgBouncer first"
        )
    notes.append(
        "a live SET lasts until the next RELOAD or restart, which reverts it to the file's value; to keep "
        "it, set pgbouncer_max_client_conn in the inventory (group_vars/pgbouncer or the host) and run the "
        "playbook (the role raises LimitNOFILE with it)"
    )
    return RunbookPlan(RUNBOOK, tuple(actions), tuple(notes))

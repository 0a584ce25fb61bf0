"""Which PgBouncer process an admin session reached, and which processes a runbook acts on.

A host may run several PgBouncer processes on one port (so_reuseport): the kernel hands each new TCP
connection to one of them, so an admin session over the network reaches one process, not the host.
The runbooks name every process they act on (``pgbouncer@ADDRESS:PORT process N``) and reconnect
until the session is on that process. A process tells its number by SHOW CONFIG: ``peer_id`` where
the version has peers (1.19+) and one is set, else its pidfile (the role names process N's unit,
config and pidfile ``pgbouncer-N``, the first one plain ``pgbouncer``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath

from toolkit.domain.numbers import as_int
from toolkit.domain.runbooks.base import RunbookUsageError

_PIDFILE = re.compile(r"^pgbouncer(?:-(\d+))?$")


def process_number(config: Mapping[str, str]) -> int:
    """The process number SHOW CONFIG gives away, or 0 when it does not say.

    >>> process_number({"peer_id": "2", "pidfile": "/run/postgresql/pgbouncer-2.pid"})
    2
    >>> process_number({"peer_id": "0", "pidfile": "/var/run/postgresql/pgbouncer.pid"})
    1
    >>> process_number({"pidfile": "/run/postgresql/pgbouncer-3.pid"})
    3
    >>> process_number({"pidfile": "/run/other.pid"}), process_number({})
    (0, 0)
    """
    peer = as_int(config.get("peer_id"))
    if peer > 0:
        return peer
    pidfile = str(config.get("pidfile", "") or "")
    match = _PIDFILE.match(PurePosixPath(pidfile).stem) if pidfile else None
    if match is None:
        return 0
    return int(match.group(1) or 1)


def selected_processes(host: str, processes: int, wanted: int | None) -> list[int]:
    """The processes of ``host`` a run acts on: 0 (whichever answers) for a one-process host, else each
    process, or only ``wanted`` (--process).

    >>> selected_processes("pgb1", 1, None), selected_processes("pgb2", 2, None)
    ([0], [1, 2])
    >>> selected_processes("pgb2", 2, 2)
    [2]
    >>> selected_processes("pgb2", 2, 3)
    Traceback (most recent call last):
    ...
    toolkit.domain.runbooks.base.RunbookUsageError: --process 3: pgb2 runs 2 PgBouncer process(es) \
(pgbouncer_processes in the inventory); pick one of 1-2
    """
    if wanted is not None and processes <= 1 and wanted != 1:
        raise RunbookUsageError(f"--process {wanted}: {host} runs one PgBouncer process: leave --process out")
    if wanted is not None and not 1 <= wanted <= processes:
        raise RunbookUsageError(
            f"--process {wanted}: {host} runs {processes} PgBouncer process(es) (pgbouncer_processes in "
            f"the inventory); pick one of 1-{processes}"
        )
    if wanted is not None:
        return [wanted] if processes > 1 else [0]
    return [0] if processes <= 1 else list(range(1, processes + 1))

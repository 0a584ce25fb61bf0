"""pgbench: start a run, read its summary and its per-transaction latency log.

The p99 comes from the per-transaction log (``--log``), one line per transaction with its latency in
microseconds, so it is exact, not the mean and standard deviation pgbench prints. Passwords never go
on the command line: the caller passes an environment (``PGPASSFILE`` or ``PGPASSWORD``).
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from toolkit.adapters import tool
from toolkit.domain.calibrate import sweep_schedule
from toolkit.domain.errors import UnreachableError
from toolkit.domain.numbers import as_int
from toolkit.domain.pgbouncer_rows import ConfigEntry, DatabaseRow

# Debian installs pgbench outside PATH, under the server version's bin directory.
DEBIAN_BIN = Path("/usr/lib/postgresql")
# A Django-like request: BEGIN; 4 SELECT by primary key; 1 UPDATE; COMMIT (7 queries per transaction).
DJANGO_LIKE = """\
\\set aid random(1, 100000 * :scale)
\\set aid2 random(1, 100000 * :scale)
\\set aid3 random(1, 100000 * :scale)
\\set aid4 random(1, 100000 * :scale)
\\set delta random(-5000, 5000)
BEGIN;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid2;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid3;
SELECT abalance FROM pgbench_accounts WHERE aid = :aid4;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
COMMIT;
"""


class PgbenchError(UnreachableError):
    """pgbench is missing or could not run, or a sweep could not set the pool size (exit 3)."""


@dataclass(frozen=True)
class Endpoint:
    """Where pgbench connects: host, port, user, database (the password comes from the environment)."""

    host: str
    port: int
    user: str
    dbname: str

    def args(self) -> list[str]:
        """Connection options for pgbench or psql."""
        return ["-h", self.host, "-p", str(self.port), "-U", self.user, self.dbname]


@dataclass(frozen=True)
class Result:
    """One pgbench run: throughput, latency percentiles (ms), failures and aborted clients."""

    tps: float
    transactions: int
    failed: int
    aborted_clients: int
    p50_ms: float | None
    p99_ms: float | None
    returncode: int
    error: str = ""
    latencies_ms: tuple[float, ...] = field(default=(), repr=False, compare=False)

    @property
    def clean(self) -> bool:
        """True when every client ran to the end without a failed transaction."""
        return self.returncode == 0 and self.failed == 0 and self.aborted_clients == 0


def find() -> str:
    """The pgbench binary: on PATH, else the newest Debian server version's."""
    found = shutil.which("pgbench")
    if found:
        return found
    candidates = sorted(
        DEBIAN_BIN.glob("*/bin/pgbench"), key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0
    )
    if not candidates:
        raise PgbenchError("pgbench not found: install postgresql-contrib (Debian) or put pgbench on PATH")
    return str(candidates[-1])


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (q in 0..100), None when empty.

    >>> percentile([5.0, 1.0, 3.0, 2.0, 4.0], 50), percentile(list(range(1, 101)), 99), percentile([], 99)
    (3.0, 99, None)
    """
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def parse_summary(text: str) -> tuple[float, int, int, int]:
    """tps, transactions processed, failed transactions and aborted clients from pgbench's output.

    >>> parse_summary('''number of transactions actually processed: 300
    ... number of failed transactions: 2 (0.661%)
    ... pgbench: error: client 3 aborted in command 4 (SQL) of script 0; ERROR: x
    ... tps = 123.456 (without initial connection time)''')
    (123.456, 300, 2, 1)
    """
    tps = re.search(r"^tps = ([\d.]+)", text, re.MULTILINE)
    done = re.search(r"^number of transactions actually processed: (\d+)", text, re.MULTILINE)
    failed = re.search(r"^number of failed transactions: (\d+)", text, re.MULTILINE)
    aborted = len(re.findall(r"client \d+ aborted", text))
    return (
        float(tps.group(1)) if tps else 0.0,
        int(done.group(1)) if done else 0,
        int(failed.group(1)) if failed else 0,
        aborted,
    )


def read_latencies(prefix: Path) -> list[float]:
    """Latencies (ms) of every transaction in the logs ``prefix.PID[.THREAD]``; failed ones are skipped.

    Each line is ``client_id transaction_no time script_no time_epoch time_us``, ``time`` being the
    transaction's latency in microseconds (or ``failed``/``skipped``).
    """
    out: list[float] = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        with path.open() as fh:
            for line in fh:
                fields = line.split()
                if len(fields) >= 3 and fields[2].isdigit():
                    out.append(int(fields[2]) / 1000)
        path.unlink()
    return out


class Run:
    """One pgbench process, started now, read by :meth:`wait`."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        clients: int,
        threads: int,
        duration: float,
        env: Mapping[str, str],
        log_prefix: Path,
        script: Path | None = None,
        scale: int = 1,
        binary: str | None = None,
    ) -> None:
        self.log_prefix = log_prefix
        self.duration = duration
        # A custom script sees :scale = 1 unless -s says otherwise; the builtin reads pgbench_branches.
        workload = ["-f", str(script), "-s", str(scale)] if script is not None else ["-b", "tpcb-like"]
        argv = [
            binary or find(),
            "-n",  # the caller vacuums as the tables' owner; the load's role may not own them
            "-c",
            str(clients),
            "-j",
            str(max(1, min(threads, clients))),
            "-T",
            str(max(1, round(duration))),
            "--log",
            f"--log-prefix={log_prefix}",
            *workload,
            *endpoint.args(),
        ]
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            argv,
            env=dict(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=log_prefix.parent,
        )

    def wait(self, grace: float = 60.0) -> Result:
        """Wait for the run's end and read its summary and latency log (kills it if it overruns)."""
        try:
            out, _ = self._proc.communicate(timeout=self.duration + grace)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            out, _ = self._proc.communicate()
        tps, done, failed, aborted = parse_summary(out)
        latencies = read_latencies(self.log_prefix)
        errors = [ln for ln in out.splitlines() if "error" in ln.lower() or "aborted" in ln]
        return Result(
            tps,
            done,
            failed,
            aborted,
            percentile(latencies, 50),
            percentile(latencies, 99),
            self._proc.returncode,
            errors[0][:300] if errors else "",
            tuple(latencies),
        )

    def stop(self) -> None:
        """Kill the run if it is still going (cleanup on error)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def initialize(
    endpoint: Endpoint, scale: int, env: Mapping[str, str], binary: str | None = None, timeout: float = 600
) -> None:
    """``pgbench -i -s scale`` (creates and fills the pgbench tables, replacing any)."""
    try:
        tool.run(
            [binary or find(), "-i", "-q", "-s", str(scale), *endpoint.args()],
            timeout,
            env=env,
            secrets=_secrets(env),
        )
    except tool.ToolError as exc:
        raise PgbenchError(f"pgbench -i failed: {exc.cause}") from None


def _secrets(env: Mapping[str, str]) -> list[str]:
    """The password in the environment, masked in any error line a tool echoes."""
    return [v for k, v in env.items() if k == "PGPASSWORD" and v]


def dataset_scale(endpoint: Endpoint, env: Mapping[str, str], timeout: float = 5.0) -> int | None:
    """The pgbench dataset's scale (rows of pgbench_branches) in the endpoint's database; None if absent.

    Read with psql (the same libpq password lookup as pgbench: PGPASSWORD or the password file).
    """
    sql = (
        "SELECT CASE WHEN to_regclass('pgbench_accounts') IS NULL "
        "OR to_regclass('pgbench_branches') IS NULL THEN -1 ELSE 0 END"
    )
    psql = shutil.which("psql") or "psql"
    conn = [psql, "-X", "-At", "-v", "ON_ERROR_STOP=1", *endpoint.args()]
    env = {**env, "PGCONNECT_TIMEOUT": str(max(1, round(timeout)))}
    try:
        if tool.output([*conn, "-c", sql], timeout + 10, env=env, secrets=_secrets(env)).strip() != "0":
            return None
        count = tool.output(
            [*conn, "-c", "SELECT count(*) FROM pgbench_branches"],
            timeout + 10,
            env=env,
            secrets=_secrets(env),
        )
    except tool.ToolError as exc:
        raise PgbenchError(
            f"psql to {endpoint.host}:{endpoint.port} as {endpoint.user}: {exc.cause}"
        ) from None
    return as_int(count)


class PoolConsole(Protocol):
    """What a sweep needs of a PgBouncer admin console."""

    def config(self) -> Mapping[str, ConfigEntry]: ...

    def databases(self) -> tuple[DatabaseRow, ...]: ...

    def set(self, key: str, value: object) -> None: ...


def live_pool_size(console: PoolConsole, database: str) -> int | None:
    """The pool size SHOW DATABASES reports for ``database`` (None if PgBouncer does not serve it)."""
    return next((r.pool_size for r in console.databases() if r.name == database), None)


@dataclass(frozen=True)
class SweepPoint:
    """One pool size of a sweep and what pgbench measured there."""

    size: int
    result: Result
    round: int = 1

    @property
    def pool_size(self) -> int:
        """The pool size (``toolkit.domain.calibrate.knee`` reads points by these three names)."""
        return self.size

    @property
    def tps(self) -> float:
        """pgbench's throughput at this size."""
        return self.result.tps

    @property
    def p99_ms(self) -> float | None:
        """The p99 latency at this size, from the per-transaction log."""
        return self.result.p99_ms

    def to_dict(self) -> dict[str, Any]:
        """The point as calibrate's JSON gives it."""
        r = self.result
        errors = r.failed + r.aborted_clients
        return {
            "round": self.round,
            "size": self.size,
            "tps": r.tps,
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "errors": errors,
        }


def sweep(
    console: PoolConsole,
    endpoint: Endpoint,
    sizes: Sequence[int],
    *,
    clients: int,
    duration: float,
    env: Mapping[str, str],
    script: str | None = None,
    scale: int = 1,
    progress: Callable[[SweepPoint], None] | None = None,
    rounds: int = 1,
) -> tuple[int, list[SweepPoint]]:
    """SET default_pool_size to each size, run pgbench through PgBouncer, restore the size at the end.

    With ``rounds`` above 1, every size runs once per round, in the order of
    :func:`toolkit.domain.calibrate.sweep_schedule` (odd rounds as given, even reversed).
    Returns the original size and the points in the order they ran, each with its round. The original
    is restored once, at the end, even on error or Ctrl-C;
    a size that SHOW DATABASES does not report back (the database pins its own pool_size in
    [databases]) stops the sweep with a PgbenchError.
    """
    original = int(console.config()["default_pool_size"].value)
    points: list[SweepPoint] = []
    with tempfile.TemporaryDirectory(prefix="toolkit-sweep-") as tmp:
        script_path = None
        if script is not None:
            script_path = Path(tmp) / "script.sql"
            script_path.write_text(script)
        try:
            for round_number, size in sweep_schedule(sizes, rounds):
                console.set("default_pool_size", int(size))
                live = live_pool_size(console, endpoint.dbname)
                if live != size:
                    raise PgbenchError(
                        f"SET default_pool_size = {size} did not reach database {endpoint.dbname} (SHOW "
                        f"DATABASES says pool_size {live}): it pins pool_size in [databases]; sweep stopped"
                    )
                run = Run(
                    endpoint,
                    clients=clients,
                    threads=2,
                    duration=duration,
                    env=env,
                    log_prefix=Path(tmp) / f"log-{size}-{round_number}",
                    script=script_path,
                    scale=scale,
                )
                try:
                    point = SweepPoint(size, run.wait(), round_number)
                finally:
                    run.stop()
                points.append(point)
                if progress is not None:
                    progress(point)
        finally:
            console.set("default_pool_size", original)
    return original, points

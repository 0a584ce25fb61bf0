"""Run several calls at once, each under its own deadline and all under an overall one.

The one place where the toolkit reads targets concurrently (doctor's gather, watch, the runbooks'
admin sessions, the Django nodes). Each call runs in a daemon thread: a target that accepts a TCP
connection and then says nothing (a frozen process, a dropped link) is reported as timed out, and its
thread is abandoned. It can neither delay the other targets nor keep the process alive at exit (an
executor's worker threads are joined at interpreter exit; daemon threads are not).

A call's deadline counts from when it starts: with ``limit``, at most that many run at once and the
rest wait their turn, within the overall deadline. A call still waiting for its turn when the overall
deadline passes never starts.

>>> [o.value for o in run([Job("a", lambda: 1, 1.0), Job("b", lambda: 2, 1.0)])]
[1, 2]
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from toolkit.adapters.errors import TargetError

T = TypeVar("T")

_POLL = 0.05  # seconds between looks at a call that has not started yet (only with ``limit``)


@dataclass(frozen=True)
class Job(Generic[T]):
    """One call: ``name`` is the target (thread name, timeout message); ``timeout`` in seconds."""

    name: str
    call: Callable[[], T]
    timeout: float
    during: str = "the read"
    hint: str = "is the server frozen or overloaded?"


@dataclass
class _Slot(Generic[T]):
    job: Job[T]
    value: T | None = None
    error: BaseException | None = None
    started: float | None = None
    finished: float | None = None
    abandoned: bool = False
    done: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What one call gave: its value, or the error it raised, or a timeout (``timed_out``)."""

    job: Job[T]
    value: T | None
    error: BaseException | None
    elapsed: float
    timed_out: bool
    _done: threading.Event = field(repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """The call returned in time."""
        return self.error is None

    def result(self) -> T:
        """The value, or raise the call's error (a timeout is a TargetError)."""
        if self.error is not None:
            raise self.error
        return self.value  # type: ignore[return-value]  # a call that returned gave a T

    def wait(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a timed-out call to end after all (after its session is dropped)."""
        return self._done.wait(max(0.0, seconds))


def timeout_error(job: Job[object]) -> TargetError:
    """The error of a call that did not end within its deadline."""
    return TargetError(job.name, job.during, f"timed out after {job.timeout:g} s", job.hint)


class Running(Generic[T]):
    """Calls started by :func:`start`; :meth:`wait` collects them, in the order given."""

    def __init__(self, jobs: Sequence[Job[T]], overall: float | None, limit: int | None) -> None:
        self._began = time.monotonic()
        self._end = None if overall is None else self._began + overall
        self._lock = threading.Lock()
        self._slots = [_Slot(job) for job in jobs]
        self._queue = deque(self._slots)
        workers = len(self._slots) if limit is None else min(max(1, limit), len(self._slots))
        for n in range(workers):
            self._spawn(self._slots[n].job.name if limit is None else f"worker-{n + 1}")

    def _spawn(self, name: str) -> None:
        threading.Thread(target=self._work, name=f"deadline-{name}", daemon=True).start()

    def _next(self) -> _Slot[T] | None:
        with self._lock:
            while self._queue:
                slot = self._queue.popleft()
                now = time.monotonic()
                if self._end is not None and now >= self._end:
                    slot.abandoned = True  # its turn came too late: it never starts
                elif not slot.abandoned:
                    slot.started = now
                    return slot
            return None

    def _work(self) -> None:
        while (slot := self._next()) is not None:
            try:
                slot.value = slot.job.call()
            except BaseException as exc:  # reported per call, never raised across threads
                slot.error = exc
            finally:
                slot.finished = time.monotonic()
                slot.done.set()

    def _settle(self, slot: _Slot[T]) -> bool:
        """Wait for ``slot`` until its deadline (or the overall one); True when it finished in time."""
        while not slot.done.is_set():
            with self._lock:
                started = slot.started
            end = self._end
            if started is not None:
                own = started + slot.job.timeout
                end = own if end is None else min(end, own)
            now = time.monotonic()
            if end is not None and now >= end:
                break
            pause = _POLL if started is None else None
            if end is not None:
                pause = end - now if pause is None else min(pause, end - now)
            slot.done.wait(pause)
        with self._lock:
            if slot.done.is_set():
                return True
            slot.abandoned = True  # not started yet: never starts; running: left to end on its own
            replace = slot.started is not None and bool(self._queue)
        if replace:  # its worker is stuck in it: another one takes the calls still waiting
            self._spawn(f"after-{slot.job.name}")
        return False

    def wait(self) -> list[Outcome[T]]:
        """Each call's outcome, waiting no longer than its deadline (and the overall one)."""
        out: list[Outcome[T]] = []
        for slot in self._slots:
            if self._settle(slot):
                elapsed = (slot.finished or self._began) - (
                    slot.started or self._began
                )  # both set before done
                out.append(Outcome(slot.job, slot.value, slot.error, elapsed, False, slot.done))
            else:
                elapsed = time.monotonic() - (slot.started or self._began)
                error = timeout_error(slot.job)  # type: ignore[arg-type]  # only its name and texts are read
                out.append(Outcome(slot.job, None, error, elapsed, True, slot.done))
        return out


def start(jobs: Sequence[Job[T]], overall: float | None = None, limit: int | None = None) -> Running[T]:
    """Start every call now (at most ``limit`` at once); collect them with ``.wait()``."""
    return Running(jobs, overall, limit)


def run(jobs: Sequence[Job[T]], overall: float | None = None, limit: int | None = None) -> list[Outcome[T]]:
    """Run every call concurrently and return each one's outcome, in the order given."""
    return start(jobs, overall, limit).wait()

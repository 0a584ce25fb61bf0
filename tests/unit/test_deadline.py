"""The deadline runner (toolkit/adapters/deadline.py) with real threads: a hung call times out alone.

No wall-clock bounds: "returned before the hung call finished" is shown with events (the hung call
is still blocked when the runner has returned), never with a measured time.
"""

from __future__ import annotations

import threading

import pytest

from toolkit.adapters import deadline
from toolkit.adapters.deadline import Job
from toolkit.adapters.errors import TargetError


class Hung:
    """A call that blocks until released, and says whether it ever ended."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.ended = threading.Event()

    def __call__(self) -> str:
        self.entered.set()
        self.release.wait()
        self.ended.set()
        return "late"


def test_a_hung_call_times_out_and_the_others_return() -> None:
    hung = Hung()
    try:
        jobs: list[Job[object]] = [
            Job("a", lambda: 1, 5.0),
            Job("frozen", hung, 0.2, "SHOW POOLS"),
            Job("c", lambda: 3, 5.0),
        ]
        outcomes = deadline.run(jobs)
        assert not hung.ended.is_set()  # the runner returned while the hung call was still blocked
    finally:
        hung.release.set()
    assert [o.value for o in outcomes] == [1, None, 3]
    assert [o.timed_out for o in outcomes] == [False, True, False]
    error = outcomes[1].error
    assert isinstance(error, TargetError)
    assert (
        str(error) == "frozen: timed out after 0.2 s during SHOW POOLS; is the server frozen or overloaded?"
    )
    assert outcomes[1].wait(5.0)  # released, the abandoned call ends on its own
    with pytest.raises(TargetError):
        outcomes[1].result()


def test_an_error_is_reported_for_its_call_only() -> None:
    def boom() -> int:
        raise ValueError("bad row")

    outcomes = deadline.run([Job("a", boom, 5.0), Job("b", lambda: 2, 5.0)])
    assert isinstance(outcomes[0].error, ValueError) and not outcomes[0].timed_out
    assert outcomes[1].result() == 2 and outcomes[1].ok


def test_the_overall_deadline_ends_the_wait_for_every_call() -> None:
    first, second = Hung(), Hung()
    try:
        outcomes = deadline.run([Job("x", first, 60.0), Job("y", second, 60.0)], overall=0.2)
        assert not first.ended.is_set() and not second.ended.is_set()
    finally:
        first.release.set()
        second.release.set()
    assert [o.timed_out for o in outcomes] == [True, True]


def test_with_a_limit_a_hung_call_does_not_hold_up_the_queue() -> None:
    hung = Hung()
    ran: list[str] = []

    def named(name: str) -> Job[str]:
        def call() -> str:
            ran.append(name)
            return name

        return Job(name, call, 5.0)

    jobs: list[Job[str]] = [Job("hung", hung, 0.2), *(named(n) for n in "bcd")]
    try:
        outcomes = deadline.run(jobs, limit=1)
        assert not hung.ended.is_set()
    finally:
        hung.release.set()
    assert [o.value for o in outcomes] == [None, "b", "c", "d"]
    assert sorted(ran) == ["b", "c", "d"]


def test_a_call_still_queued_at_the_overall_deadline_never_starts() -> None:
    hung = Hung()
    started = threading.Event()

    def late() -> str:
        started.set()
        return "ran"

    try:
        outcomes = deadline.run([Job("hung", hung, 60.0), Job("late", late, 60.0)], overall=0.2, limit=1)
    finally:
        hung.release.set()
    assert [o.timed_out for o in outcomes] == [True, True]
    assert hung.ended.wait(5.0)
    assert not started.is_set()


def test_started_calls_run_while_the_caller_does_other_work() -> None:
    gate = threading.Event()
    running = deadline.start([Job("a", lambda: gate.wait(5.0), 10.0)])
    gate.set()  # the caller's own work, meanwhile
    assert [o.value for o in running.wait()] == [True]


def test_no_calls_give_no_outcomes() -> None:
    assert deadline.run([]) == []

"""pgbouncer.cancel_without_peers: several processes on one port without peers, in doctor and in the plan."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import snapshots as s
from tests.unit.snapshots import Case, W
from toolkit.domain.checks import pgbouncer, pgbouncer_peers, run_checks

PEERS = "pgbouncer.cancel_without_peers"
PGB = f"pgbouncer@{s.PGB_ADDRESS}"


def _live(processes: int, version: str, **config: str) -> s.Snapshot:
    topo = s.topology(pgbouncers=[s.pgbouncer_host(processes=processes)])
    state = s.pgbouncer_state(topo, version=version, config=s.planned_config(topo, **config))
    return s.snapshot(topo, pgbouncer=(state,))


PEERS_CASES = [
    Case(PEERS, "two processes on 1.18: no peers", _live(2, "PgBouncer 1.18.0"), W, PGB,
         {"processes": 2, "version": "1.18.0", "peers": False}, summary="a cancel request"),
    Case(PEERS, "two processes on 1.18.9: still no peers", _live(2, "PgBouncer 1.18.9"), W),
    Case(PEERS, "one process on 1.18: nothing to forward to", _live(1, "PgBouncer 1.18.0"), None),
    Case(PEERS, "two processes on 1.19 with peer_id", _live(2, "PgBouncer 1.19.0", peer_id="1"), None),
    Case(PEERS, "two processes on 1.24 with peer_id 2", _live(2, "PgBouncer 1.24.1", peer_id="2"), None),
    Case(PEERS, "two processes on 1.24 with peer_id 0: not configured",
         _live(2, "PgBouncer 1.24.1", peer_id="0"), W, evidence={"peer_id": "0"},
         summary="peer_id is not set"),
    Case(PEERS, "two processes on 1.24 without peer_id in SHOW CONFIG", _live(2, "PgBouncer 1.24.1"), W),
    Case(PEERS, "an unparsable version is not judged", _live(2, "PgBouncer (dev)"), None),
]  # fmt: skip


@pytest.mark.parametrize("case", PEERS_CASES, ids=str)
def test_peers_case(case: Case) -> None:
    s.verify(pgbouncer.run(case.snap), case)


def test_one_finding_per_host_even_with_a_state_per_process() -> None:
    topo = s.topology(pgbouncers=[s.pgbouncer_host(processes=3)])
    state = s.pgbouncer_state(topo, version="PgBouncer 1.18.0")
    found = s.by_id(run_checks(s.snapshot(topo, pgbouncer=(state, state))), PEERS)
    assert len(found) == 1 and found[0].evidence["processes"] == 3


def test_only_selects_the_peers_finding() -> None:
    found = run_checks(_live(2, "PgBouncer 1.18.0"), only=PEERS)
    assert [f.id for f in found] == [PEERS]


@pytest.mark.parametrize(
    ("processes", "minimum", "noted"),
    [(2, "", True), (2, "1.18", True), (2, "1.19", False), (2, "1.25.2", False), (1, "", False)],
)
def test_plan_says_cancels_can_be_lost_unless_the_inventory_requires_peers(
    processes: int, minimum: str, noted: bool
) -> None:
    topo = s.topology(pgbouncers=[s.pgbouncer_host(processes=processes)])
    notes = pgbouncer_peers.plan_notes(topo, {"pgb1": minimum})
    assert bool(notes) is noted
    if noted:
        (note,) = notes
        assert note.startswith("pgb1: 2 PgBouncer processes share port 6432;")
        assert "cancel request that reaches another process than the query's is lost" in note
        assert PEERS in note and "\n" not in note


def test_documented(**_: Any) -> None:
    assert PEERS in s.documented_ids("pgbouncer")

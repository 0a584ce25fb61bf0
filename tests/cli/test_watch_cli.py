"""toolkit watch's table: every PgBouncer host, each process of a so_reuseport host, failures named."""

from __future__ import annotations

from rich.console import Console

from tests.unit import snapshots as s
from toolkit.cli.watch import pools_table
from toolkit.domain.snapshot import PgBouncerState, TargetStatus


def _state(host: str, address: str, config: dict[str, str], **changes: object) -> PgBouncerState:
    return s.pgbouncer_state(host=host, address=address, config=config, **changes)


def _render(statuses: list[TargetStatus], states: list[PgBouncerState]) -> list[str]:
    console = Console(width=140, record=True, color_system=None)
    console.print(pools_table(statuses, states))
    return [line.strip() for line in console.export_text().splitlines()]


def test_every_host_and_every_process_has_a_row_with_fleet_totals() -> None:
    states = [
        _state("pgb2", "10.0.0.6:6432 process 2", {"peer_id": "2"}, pools=()),
        _state("pgb1", "10.0.0.5:6432", {}, pools=(s.pool(cl_active=3, sv_active=2),)),
        _state(
            "pgb2", "10.0.0.6:6432 process 1", {"peer_id": "1"}, pools=(s.pool(cl_active=4, cl_waiting=1),)
        ),
    ]
    failed = TargetStatus("pgb3", "pgbouncer", "10.0.0.7:6432 process 2", False, 2.0, "timed out after 2 s")
    lines = _render([failed], states)
    rows = [line for line in lines if line.startswith("│")]
    names = [row.split("│")[1].strip() for row in rows]
    assert names == [
        "pgb1@10.0.0.5:6432",
        "pgb2@10.0.0.6:6432 process 1",
        "pgb2@10.0.0.6:6432 process 2",
        "pgb3@10.0.0.7:6432 process 2",
        "fleet",
    ]
    assert "no pool yet" in rows[2]
    assert "timed out after 2 s" in rows[3]
    assert [c.strip() for c in rows[4].split("│")[3:7]] == ["7", "1", "2", "0"]

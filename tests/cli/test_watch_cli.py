"""toolkit watch's screen: every PgBouncer host and process, pools beside the plan and by pressure, waiting
clients by app node, saturation marked (red on a terminal, a word everywhere), PostgreSQL's slots."""

from __future__ import annotations

import io

from rich.console import Console

from tests.unit import snapshots as s
from toolkit.cli.watch import pools_table, view
from toolkit.domain.models import Topology
from toolkit.domain.sizing import plan
from toolkit.domain.snapshot import PgBouncerState, TargetStatus

TOPO = s.topology(
    pgbouncers=(s.pgbouncer_host(), s.pgbouncer_host("pgb2", processes=2, listen_addr="10.0.0.6")),
    app_nodes=(
        s.app_node(pgbouncer_hosts=("pgb1", "pgb2")),
        s.app_node("web2", address="10.0.1.2", pgbouncer_hosts=("pgb2",)),
    ),
)
PLAN = plan(TOPO)
SIZE = {p.host: p.value("default_pool_size") for p in PLAN.pgbouncer}
RESERVE = {p.host: p.value("reserve_pool_size") for p in PLAN.pgbouncer}


def _state(host: str, address: str, **changes: object) -> PgBouncerState:
    return s.pgbouncer_state(host=host, address=address, **changes)


def _lines(console: Console) -> list[str]:
    return [line.strip() for line in console.export_text().splitlines()]


def _rows(lines: list[str]) -> list[list[str]]:
    return [[c.strip() for c in line.split("│")[1:-1]] for line in lines if line.startswith("│")]


def _states() -> list[PgBouncerState]:
    waiting = tuple(s.conn(state="waiting", addr="10.0.1.2", port=p) for p in (1, 2))
    return [
        _state("pgb2", "10.0.0.6:6432 process 2", pools=()),
        _state("pgb1", "10.0.0.5:6432", pools=(s.pool(cl_active=3, sv_active=2),)),
        _state(
            "pgb2",
            "10.0.0.6:6432 process 1",
            pools=(
                s.pool(cl_active=SIZE["pgb2"], sv_active=SIZE["pgb2"], cl_waiting=3, maxwait_seconds=2.5),
            ),
            clients=waiting,
        ),
    ]


def test_pools_by_pressure_beside_the_plan_with_waiting_clients_by_app_node() -> None:
    failed = TargetStatus("pgb3", "pgbouncer", "10.0.0.7:6432 process 2", False, 2.0, "timed out after 2 s")
    console = Console(width=200, record=True, color_system=None)
    console.print(pools_table([failed], _states(), TOPO, PLAN))
    rows = _rows(_lines(console))
    assert [r[0] for r in rows] == [
        "pgb2@10.0.0.6:6432#1",  # clients wait: first
        "pgb1@10.0.0.5:6432",
        "pgb2@10.0.0.6:6432#2",
        "pgb3@10.0.0.7:6432#2",
        "fleet",
    ]
    header = ["pool", "servers", "util", "clients", "waiting", "waiting from", "maxwait", "state"]
    first = dict(zip(header, rows[0][1:], strict=True))
    assert first == {
        "pool": "app/app",
        "servers": f"{SIZE['pgb2']}/{SIZE['pgb2']}+{RESERVE['pgb2']}",
        "util": "100%",
        "clients": str(SIZE["pgb2"]),
        "waiting": "3",
        "waiting from": "web2 2, unknown 1",  # two listed from web2's address, one SHOW CLIENTS missed
        "maxwait": "2.5",
        "state": "SATURATED",
    }
    second = dict(zip(header, rows[1][1:], strict=True))
    assert (second["servers"], second["util"], second["state"]) == (
        f"2/{SIZE['pgb1']}+{RESERVE['pgb1']}",
        f"{2 / SIZE['pgb1']:.0%}",
        "",
    )
    assert "no pool yet" in rows[2][1]
    assert "timed out after 2 s" in rows[3][1]
    fleet = dict(zip(header, rows[4][1:], strict=True))
    active, planned = SIZE["pgb2"] + 2, SIZE["pgb2"] + SIZE["pgb1"]
    assert (fleet["servers"], fleet["clients"], fleet["waiting"], fleet["maxwait"]) == (
        f"{active}/{planned}",
        str(SIZE["pgb2"] + 3),
        "3",
        "2.5",
    )


def test_near_limit_is_named_and_no_plan_leaves_the_planned_columns_empty() -> None:
    near = int(SIZE["pgb1"] * 0.9)
    states = [_state("pgb1", "10.0.0.5:6432", pools=(s.pool(sv_active=near),))]
    console = Console(width=200, record=True, color_system=None)
    console.print(pools_table([], states, TOPO, PLAN))
    console.print(pools_table([], states))
    rows = _rows(_lines(console))
    with_plan, without = rows[0], rows[2]
    assert (with_plan[2], with_plan[-1]) == (f"{near}/{SIZE['pgb1']}+{RESERVE['pgb1']}", "near limit")
    assert (without[2], without[3], without[-1]) == (str(near), "-", "")


def test_saturation_in_red_on_a_terminal_and_no_colour_elsewhere() -> None:
    states = _states()
    tty = io.StringIO()
    Console(file=tty, width=200, force_terminal=True, color_system="standard").print(
        pools_table([], states, TOPO, PLAN)
    )
    saturated = next(line for line in tty.getvalue().splitlines() if "SATURATED" in line)
    assert "\x1b[1;31m" in saturated  # bold red
    calm = next(line for line in tty.getvalue().splitlines() if "pgb1@" in line)
    assert "\x1b[1;31m" not in calm
    pipe = io.StringIO()
    Console(file=pipe, width=200).print(pools_table([], states, TOPO, PLAN))  # not a terminal
    assert "\x1b[" not in pipe.getvalue()
    assert "SATURATED" in pipe.getvalue()


def _topology_view(topo: Topology, statuses: list[TargetStatus], states: list[object]) -> list[str]:
    console = Console(width=200, record=True, color_system=None)
    console.print(view(statuses, states, topo, plan(topo)))
    return _lines(console)


def test_postgres_slots_used_against_usable_and_why_not_read() -> None:
    pg = s.postgres_state([s.backend(1), s.backend(2), s.backend(3, backend_type="autovacuum worker")])
    lines = _topology_view(TOPO, [s.target("postgres")], [*_states(), pg])
    # two client backends + watch's own session, of 100 - 3 superuser-reserved
    assert "PostgreSQL 10.0.0.9: 3 of 97 usable slots in use (3%; max_connections 100)" in lines
    down = s.target("postgres", ok=False)
    lines = _topology_view(TOPO, [down], _states())
    assert "PostgreSQL 10.0.0.9:5432: not read: connection refused" in lines
    # The postgres status is on its line, not among the PgBouncer rows.
    assert not any(line.startswith("│ postgres@") for line in lines)

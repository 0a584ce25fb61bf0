"""Attribution of a PostgreSQL session to the app node holding it, by address, through every process of
every PgBouncer host; and which PgBouncer process a runbook reaches and acts on."""

from __future__ import annotations

from dataclasses import replace

import pytest

from toolkit.domain.attribution import PoolerLinks, attribute, holder_text, node_of
from toolkit.domain.models import AppNode
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.domain.runbooks.processes import process_number, selected_processes
from toolkit.domain.snapshot import Backend, ClientConn

NODES = [AppNode("app1", address="198.18.0.13"), AppNode("app2", address="198.18.0.14")]
PGB1, PGB2 = "198.18.0.11", "198.18.0.12"


def _backend(pid: int, via: str) -> Backend:
    return Backend(
        pid, "app", "app", "x", via, "client backend", "idle in transaction", 9.0, 9.0, 9.0, "", (), ""
    )


def _pair(ptr: int, addr: str, name: str, pid: int) -> tuple[ClientConn, ClientConn]:
    client = ClientConn("C", "app", "app", "active", addr, 40000 + ptr, f"0xc{ptr}", f"0xs{ptr}", 0, name)
    server = ClientConn("S", "app", "app", "active", "198.18.0.10", 5432, f"0xs{ptr}", f"0xc{ptr}", pid, name)
    return client, server


def _pooler(label: str, host: str, address: str, *pairs: tuple[ClientConn, ClientConn]) -> PoolerLinks:
    return PoolerLinks(label, host, address, tuple(c for c, _ in pairs), tuple(s for _, s in pairs))


def test_each_session_is_attributed_to_its_node_through_every_process() -> None:
    pgb1 = _pooler("pgb1", "pgb1", PGB1, _pair(1, "198.18.0.13", "app1", 101))
    pgb2_1 = _pooler("pgb2 p1", "pgb2", PGB2, _pair(2, "198.18.0.14", "app2", 102))
    pgb2_2 = _pooler("pgb2 p2", "pgb2", PGB2, _pair(3, "198.18.0.13", "app1", 103))
    backends = [_backend(101, PGB1), _backend(102, PGB2), _backend(103, PGB2)]
    owners = attribute(backends, [pgb1, pgb2_1, pgb2_2], NODES)
    assert {pid: (e["app_node"], e["pgbouncer"]) for pid, e in owners.items()} == {
        101: ("app1", "pgb1"),
        102: ("app2", "pgb2 p1"),
        103: ("app1", "pgb2 p2"),
    }
    assert owners[103]["client"] == "198.18.0.13:40003"


def test_the_address_decides_not_the_application_name() -> None:
    spoof = _pooler("pgb2", "pgb2", PGB2, _pair(1, "198.18.0.1", "app1", 201))  # the controller says app1
    owners = attribute([_backend(201, PGB2)], [spoof], NODES)
    assert "app_node" not in owners[201]
    assert owners[201]["client_application_name"] == "app1"
    assert "no app node of the inventory has that address" in holder_text(owners[201])


def test_a_server_row_of_another_pgbouncer_host_is_not_this_backend() -> None:
    pooler = _pooler("pgb1", "pgb1", PGB1, _pair(1, "198.18.0.13", "app1", 301))
    assert attribute([_backend(301, PGB2)], [pooler], NODES) == {}
    assert attribute([], [pooler], NODES) == {}  # a pid PostgreSQL does not have


def test_an_idle_pooled_server_has_no_client() -> None:
    _, server = _pair(1, "198.18.0.13", "app1", 401)
    idle = replace(server, state="idle", link="", application_name="")
    owners = attribute([_backend(401, PGB1)], [PoolerLinks("pgb1", "pgb1", PGB1, (), (idle,))], NODES)
    assert owners[401] == {"pgbouncer": "pgb1", "pgbouncer_host": "pgb1"}
    assert holder_text(owners[401]) == "a pooled server connection of pgb1, no client on it"


@pytest.mark.parametrize(
    ("addr", "name", "node"),
    [("10.0.0.9", "web2", "web2"), ("10.0.0.9", "other", "web1 or web2"), ("10.0.0.8", "web1", None)],
)
def test_several_nodes_behind_one_address(addr: str, name: str, node: str | None) -> None:
    assert node_of(addr, name, {"10.0.0.9": ["web1", "web2"]}) == node


@pytest.mark.parametrize(
    ("config", "number"),
    [
        ({"peer_id": "2", "pidfile": "/run/postgresql/pgbouncer-2.pid"}, 2),
        ({"peer_id": "0", "pidfile": "/var/run/postgresql/pgbouncer.pid"}, 1),
        ({"pidfile": "/var/run/postgresql/pgbouncer-4.pid"}, 4),
        ({"pidfile": ""}, 0),
        ({"peer_id": "x", "pidfile": "/run/pgb.pid"}, 0),
    ],
)
def test_process_number(config: dict[str, str], number: int) -> None:
    assert process_number(config) == number


def test_selected_processes() -> None:
    assert selected_processes("pgb1", 1, None) == [0]
    assert selected_processes("pgb1", 1, 1) == [0]
    assert selected_processes("pgb2", 2, None) == [1, 2]
    assert selected_processes("pgb2", 2, 1) == [1]
    with pytest.raises(RunbookUsageError, match="pgb1 runs one PgBouncer process: leave --process out"):
        selected_processes("pgb1", 1, 2)
    with pytest.raises(RunbookUsageError, match="pick one of 1-2"):
        selected_processes("pgb2", 2, 3)

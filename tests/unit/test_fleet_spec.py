"""The lab fleet's pure parts (lab/fleet_spec.py, lab/fleet_image.py): fleet.toml, addresses, recipe hash,
image pruning and the stale-state decision that lets `up` recover from a killed run."""

from __future__ import annotations

import doctest
import importlib
import ipaddress
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"


def _lab(name: str) -> ModuleType:
    """lab/ is not part of the wheel: its modules import each other by bare name, from that directory."""
    if str(LAB) not in sys.path:
        sys.path.insert(0, str(LAB))
    return importlib.import_module(name)


spec = _lab("fleet_spec")
image = _lab("fleet_image")


def _data(**network: object) -> dict[str, object]:
    net = {"bridge": "tklab0", "subnet": "198.18.0.0/24", "controller": "198.18.0.1", "first_host": 10}
    net.update(network)
    return {
        "network": net,
        "host": [{"name": "db1", "release": "trixie"}, {"name": "pgb1", "release": "bookworm"}],
    }


def test_the_repo_fleet_parses_with_both_releases_and_lab_addresses() -> None:
    fleet = spec.parse_fleet(tomllib.loads((LAB / "fleet.toml").read_text()), "fleet.toml")
    assert fleet.releases == ("bookworm", "trixie")
    assert len({h.address for h in fleet.hosts}) == len(fleet.hosts)
    for host in fleet.hosts:
        assert host.address in ipaddress.IPv4Network("198.18.0.0/24")
        assert host.address != fleet.network.controller
        assert len(host.veth) <= 15
        assert host.netns == f"toolkit-{host.name}"


def test_addresses_follow_the_order_of_the_file() -> None:
    fleet = spec.parse_fleet(_data(), "t")
    assert [str(h.address) for h in fleet.hosts] == ["198.18.0.10", "198.18.0.11"]
    assert fleet.host("pgb1").release == "bookworm"


@pytest.mark.parametrize(
    ("network", "message"),
    [
        ({"subnet": "10.0.0.0/24", "controller": "10.0.0.1"}, "outside 198.18.0.0/15"),
        ({"controller": "198.18.1.1"}, "is not in subnet"),
        ({"first_host": 1}, "is the controller's"),
        ({"first_host": 254}, "do not fit"),
    ],
)
def test_bad_networks_are_refused_with_code_65(network: dict[str, object], message: str) -> None:
    with pytest.raises(spec.FleetError, match=message) as err:
        spec.parse_fleet(_data(**network), "t")
    assert err.value.code == 65


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ({"name": "a-very-long-hostname", "release": "trixie"}, "must match"),
        ({"name": "db1", "release": "trixie"}, "listed twice"),
        ({"name": "x1", "release": "sid"}, "is not one of bookworm, trixie"),
    ],
)
def test_bad_hosts_are_refused_with_code_65(host: dict[str, str], message: str) -> None:
    data = _data()
    data["host"] = [*data["host"], host]  # type: ignore[misc]
    with pytest.raises(spec.FleetError, match=message) as err:
        spec.parse_fleet(data, "t")
    assert err.value.code == 65


def test_an_unknown_host_is_a_usage_error_naming_the_fleet() -> None:
    with pytest.raises(spec.FleetError, match="no host named 'x'; the fleet has db1, pgb1") as err:
        spec.parse_fleet(_data(), "t").host("x")
    assert err.value.code == 64


def test_recipe_hash_changes_with_any_part_of_the_recipe() -> None:
    checkout = LAB.parent
    base = image.recipe("trixie", checkout)
    digest = spec.recipe_hash(base)
    assert len(digest) == 12
    assert spec.recipe_hash(dict(reversed(list(base.items())))) == digest
    for key, value in [
        ("packages", [*base["packages"], "vim"]),
        ("script", base["script"] + "true\n"),
        ("requirements", base["requirements"] + "six\n"),
        ("version", base["version"] + 1),
    ]:
        assert spec.recipe_hash({**base, key: value}) != digest, key
    assert spec.recipe_hash(image.recipe("bookworm", checkout)) != digest


def test_the_recipe_carries_every_package_the_roles_install_and_disables_their_services() -> None:
    for release in ("bookworm", "trixie"):
        r = image.recipe(release, LAB.parent)
        assert {"postgresql", "postgresql-contrib", "pgbouncer", "redis-server", "wrk", "sudo"} <= set(
            r["packages"]
        )
        assert "systemctl disable postgresql.service pgbouncer.service redis-server.service" in r["script"]
        assert "rm -f /etc/ssh/ssh_host_*" in r["script"]


def test_the_image_carries_the_demo_requirements_as_a_wheelhouse_and_a_venv() -> None:
    text = (LAB.parent / "roles/django_demo/files/requirements.txt").read_text()
    for release in ("bookworm", "trixie"):
        r = image.recipe(release, LAB.parent)
        assert r["requirements"] == text
        assert (
            "pip download" in r["script"] and "--no-index --find-links /opt/toolkit-lab/wheels" in r["script"]
        )
        assert "python3 -m venv /opt/toolkit-demo/venv" in r["script"]


def test_prune_keeps_current_and_used_images_and_drops_half_built_ones() -> None:
    present = ["trixie-aaaaaaaaaaaa", "trixie-bbbbbbbbbbbb", "bookworm-cccccccccccc", ".build-trixie-x-12"]
    assert spec.prunable_images(present, ["trixie-aaaaaaaaaaaa"], ["bookworm-cccccccccccc"]) == [
        ".build-trixie-x-12",
        "trixie-bbbbbbbbbbbb",
    ]


def test_every_host_is_named_in_every_hosts_file() -> None:
    text = spec.hosts_file(spec.parse_fleet(_data(), "t"))
    assert "198.18.0.10\tdb1\n" in text and "198.18.0.11\tpgb1\n" in text and "198.18.0.1\tcontroller" in text


Obs = spec.Observed


@pytest.mark.parametrize(
    ("seen", "state", "actions"),
    [
        (Obs(True, True, True, 5, True, True), "up", ()),
        (Obs(False, False, False, 0, False, False), "down", ()),
        # nspawn killed -9: namespace, veth, mount and pid file stay behind, maybe the container's init too
        (
            Obs(False, True, True, 2, True, True),
            "stale",
            ("kill-netns-pids", "umount", "del-veth", "del-netns", "rm-pidfile"),
        ),
        # `ip netns` leftovers alone, after a reboot of the machine or a killed `down`
        (Obs(False, False, True, 0, False, False), "stale", ("del-netns",)),
        # killed between mount and network: only the mount
        (Obs(False, False, False, 0, False, True), "stale", ("umount",)),
        # nspawn still running but its namespace was deleted under it: it must go before a new boot
        (
            Obs(True, True, False, 0, False, True),
            "stale",
            ("kill-nspawn", "umount", "rm-pidfile"),
        ),
        # a pid file of a dead nspawn and nothing else
        (Obs(False, True, False, 0, False, False), "stale", ("rm-pidfile",)),
    ],
)
def test_classify_names_every_leftover_in_cleanup_order(
    seen: object, state: str, actions: tuple[str, ...]
) -> None:
    assert spec.classify(seen) == (state, actions)


def test_the_doctests_of_fleet_spec_pass() -> None:
    result = doctest.testmod(spec)
    assert result.attempted > 0 and result.failed == 0


def test_scratch_hosts_take_addresses_beyond_the_lab_in_the_order_given() -> None:
    fleet = spec.parse_fleet(tomllib.loads((LAB / "fleet.toml").read_text()), "fleet.toml")
    hosts = spec.parse_scratch("mol12:bookworm, mol13:trixie", fleet)
    assert [(h.name, h.release, str(h.address)) for h in hosts] == [
        ("mol12", "bookworm", "198.18.0.20"),
        ("mol13", "trixie", "198.18.0.21"),
    ]
    assert not {h.address for h in hosts} & {h.address for h in fleet.hosts}
    assert {h.netns for h in hosts}.isdisjoint({h.netns for h in fleet.hosts})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "needs NAME:RELEASE"),
        ("db1:trixie", "db1 is a lab host"),
        ("mol12:bookworm,mol12:trixie", "listed twice"),
        ("mol12", "release '' is not one of bookworm, trixie"),
        ("mol12:sid", "release 'sid'"),
        ("Mol-12:trixie", "must match"),
    ],
)
def test_bad_scratch_specs_are_usage_errors(text: str, message: str) -> None:
    with pytest.raises(spec.FleetError, match=message) as err:
        spec.parse_scratch(text, spec.parse_fleet(_data(), "t"))
    assert err.value.code == 64


def test_a_scratch_host_to_take_down_needs_no_release() -> None:
    hosts = spec.parse_scratch("mol12,mol13", spec.parse_fleet(_data(), "t"), need_release=False)
    assert [h.name for h in hosts] == ["mol12", "mol13"]


def test_scratch_offsets_may_not_overlap_the_lab_hosts() -> None:
    data = _data()
    data["scratch"] = {"first_host": 11}
    with pytest.raises(spec.FleetError, match="overlaps the lab hosts") as err:
        spec.parse_fleet(data, "t")
    assert err.value.code == 65


def test_a_scratch_host_may_not_take_another_live_scratch_hosts_address() -> None:
    hosts = spec.parse_scratch("mol12:bookworm", spec.parse_fleet(_data(), "t"))
    assert spec.scratch_conflicts(hosts, {"mol12": "198.18.0.12"}) == []
    assert spec.scratch_conflicts(hosts, {"old": "198.18.0.12"}) == [
        "mol12 wants 198.18.0.12, which scratch host old holds"
    ]

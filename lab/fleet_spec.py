"""The lab fleet's description and the pure decisions about it (standard library only, no I/O).

What lives here can be tested without root: reading lab/fleet.toml into frozen values, giving each host
its address, the hash that names an image after its recipe, and deciding from what was observed of a
host (pid, namespace, veth, mount) whether it is up, down or left half-made by a killed run.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

RELEASES = ("bookworm", "trixie")
# A host name is part of its veth's name ("tkv-" + name), and Linux allows 15 bytes for that.
NAME_RE = re.compile(r"^[a-z][a-z0-9]{0,10}$")
IMAGE_RE = re.compile(r"^(?P<release>[a-z]+)-(?P<hash>[0-9a-f]{12})$")
# The only range the lab may address (RFC 2544, benchmark networks).
LAB_RANGE = ipaddress.IPv4Network("198.18.0.0/15")


class FleetError(Exception):
    """A one-line error for the operator; `code` is the exit code it ends with."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Host:
    name: str
    release: str
    address: ipaddress.IPv4Address
    purpose: str

    @property
    def netns(self) -> str:
        return f"toolkit-{self.name}"

    @property
    def veth(self) -> str:
        return f"tkv-{self.name}"


@dataclass(frozen=True)
class Network:
    bridge: str
    subnet: ipaddress.IPv4Network
    controller: ipaddress.IPv4Address


@dataclass(frozen=True)
class Fleet:
    network: Network
    hosts: tuple[Host, ...]
    # Offset in the subnet of the first scratch host (`up --scratch`): beyond every lab host's.
    scratch_first: int = 20

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise FleetError(f"fleet: no host named {name!r}; the fleet has {known}", 64)

    @property
    def releases(self) -> tuple[str, ...]:
        return tuple(sorted({h.release for h in self.hosts}))


def allocate(
    subnet: ipaddress.IPv4Network, controller: ipaddress.IPv4Address, first: int, count: int
) -> list[ipaddress.IPv4Address]:
    """Give `count` hosts consecutive addresses from offset `first` in `subnet`.

    >>> [str(a) for a in allocate(ipaddress.IPv4Network("198.18.0.0/24"),
    ...                           ipaddress.IPv4Address("198.18.0.1"), 10, 2)]
    ['198.18.0.10', '198.18.0.11']
    """
    if not subnet.subnet_of(LAB_RANGE):
        raise FleetError(
            f"fleet: subnet {subnet} lies outside {LAB_RANGE}; the lab may use only that range", 65
        )
    if controller not in subnet:
        raise FleetError(f"fleet: controller {controller} is not in subnet {subnet}", 65)
    addresses = [subnet.network_address + first + i for i in range(count)]
    for address in addresses:
        if address not in subnet or address in (subnet.network_address, subnet.broadcast_address):
            raise FleetError(f"fleet: {count} hosts from offset {first} do not fit in {subnet}", 65)
        if address == controller:
            raise FleetError(f"fleet: host address {address} is the controller's; raise first_host", 65)
    return addresses


def parse_fleet(data: Mapping[str, Any], source: str) -> Fleet:
    """Turn the parsed fleet.toml into a Fleet, or raise FleetError (65) naming the bad entry."""
    try:
        net = data["network"]
        bridge = str(net["bridge"])
        subnet = ipaddress.IPv4Network(str(net["subnet"]))
        controller = ipaddress.IPv4Address(str(net["controller"]))
        first = int(net["first_host"])
        entries = list(data["host"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FleetError(
            f"fleet: {source}: bad or missing [network]/[[host]] entry ({exc}); fix the file", 65
        ) from exc
    if not re.fullmatch(r"[a-z][a-z0-9]{0,14}", bridge):
        raise FleetError(f"fleet: {source}: bridge name {bridge!r} is not a short lower-case name", 65)
    addresses = allocate(subnet, controller, first, len(entries))
    scratch_first = int((data.get("scratch") or {}).get("first_host", first + len(entries)))
    if scratch_first < first + len(entries):
        raise FleetError(
            f"fleet: {source}: [scratch] first_host {scratch_first} overlaps the lab hosts "
            f"(offsets {first}..{first + len(entries) - 1}); raise it",
            65,
        )
    hosts: list[Host] = []
    seen: set[str] = set()
    for entry, address in zip(entries, addresses, strict=True):
        name = str(entry.get("name", ""))
        release = str(entry.get("release", ""))
        if not NAME_RE.match(name):
            raise FleetError(f"fleet: {source}: host name {name!r} must match {NAME_RE.pattern}", 65)
        if name in seen:
            raise FleetError(f"fleet: {source}: host {name!r} is listed twice", 65)
        if release not in RELEASES:
            raise FleetError(
                f"fleet: {source}: host {name}: release {release!r} is not one of {', '.join(RELEASES)}", 65
            )
        seen.add(name)
        hosts.append(Host(name, release, address, str(entry.get("purpose", ""))))
    return Fleet(Network(bridge, subnet, controller), tuple(hosts), scratch_first)


def parse_scratch(spec: str, fleet: Fleet, need_release: bool = True) -> tuple[Host, ...]:
    """Scratch hosts from `NAME:RELEASE,...` (`NAME` alone is enough to take one down): addresses follow
    the order given from the fleet's scratch offset, names must not be the lab's (usage error, 64).

    >>> lab = Fleet(Network("tklab0", ipaddress.IPv4Network("198.18.0.0/24"),
    ...                     ipaddress.IPv4Address("198.18.0.1")), (), 20)
    >>> [(h.name, h.release, str(h.address)) for h in parse_scratch("mol12:bookworm,mol13:trixie", lab)]
    [('mol12', 'bookworm', '198.18.0.20'), ('mol13', 'trixie', '198.18.0.21')]
    """
    entries = [part.strip() for part in spec.split(",") if part.strip()]
    if not entries:
        raise FleetError("fleet: --scratch needs NAME:RELEASE[,NAME:RELEASE...], e.g. mol12:bookworm", 64)
    net = fleet.network
    addresses = allocate(net.subnet, net.controller, fleet.scratch_first, len(entries))
    lab = {h.name for h in fleet.hosts}
    hosts: list[Host] = []
    for entry, address in zip(entries, addresses, strict=True):
        name, _, release = entry.partition(":")
        if not NAME_RE.match(name):
            raise FleetError(f"fleet: scratch host name {name!r} must match {NAME_RE.pattern}", 64)
        if name in lab:
            raise FleetError(f"fleet: {name} is a lab host; a scratch host needs a name of its own", 64)
        if name in {h.name for h in hosts}:
            raise FleetError(f"fleet: scratch host {name!r} is listed twice", 64)
        if release not in RELEASES and (need_release or release):
            raise FleetError(
                f"fleet: scratch host {name}: release {release!r} is not one of {', '.join(RELEASES)}; "
                f"write {name}:bookworm or {name}:trixie",
                64,
            )
        hosts.append(Host(name, release, address, "scratch"))
    return tuple(hosts)


def scratch_conflicts(wanted: Sequence[Host], live: Mapping[str, str]) -> list[str]:
    """Scratch hosts that would take an address another live scratch host (name -> address) holds.

    >>> h = Host("mol12", "bookworm", ipaddress.IPv4Address("198.18.0.20"), "scratch")
    >>> scratch_conflicts([h], {"other": "198.18.0.20", "mol12": "198.18.0.20"})
    ['mol12 wants 198.18.0.20, which scratch host other holds']
    """
    out = []
    for host in wanted:
        for name, address in sorted(live.items()):
            if name != host.name and address == str(host.address):
                out.append(f"{host.name} wants {address}, which scratch host {name} holds")
    return out


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """Name an image after everything that makes it: a changed package, script or requirement changes it.

    >>> recipe_hash({"release": "trixie", "packages": ["a", "b"]}) == recipe_hash(
    ...     {"packages": ["a", "b"], "release": "trixie"})
    True
    """
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def image_name(release: str, digest: str) -> str:
    return f"{release}-{digest}"


def prunable_images(present: Sequence[str], current: Sequence[str], in_use: Sequence[str]) -> list[str]:
    """Image directories that may go: not the current recipe's, not under a host's disk, and every
    half-built one (a name that is not `<release>-<hash>`, such as `.build-...`)."""
    keep = set(current) | set(in_use)
    return sorted(name for name in present if name not in keep)


def hosts_file(fleet: Fleet) -> str:
    """The /etc/hosts every host gets: itself and every other host by name, the controller too."""
    lines = ["127.0.0.1\tlocalhost", "::1\tlocalhost ip6-localhost ip6-loopback"]
    lines.append(f"{fleet.network.controller}\tcontroller")
    lines += [f"{h.address}\t{h.name}" for h in fleet.hosts]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Observed:
    """What was found of one host on this machine, before anything is changed."""

    nspawn_alive: bool  # the recorded pid runs systemd-nspawn on this host's root
    pid_file: bool
    netns: bool
    netns_pids: int  # processes still inside the host's namespace
    veth: bool
    mounted: bool


# The cleanup steps, in the order they must run: processes first (they hold the mount and the
# namespace), then the mount, then the links.
CLEANUP_ORDER = ("kill-nspawn", "kill-netns-pids", "umount", "del-veth", "del-netns", "rm-pidfile")


def classify(seen: Observed) -> tuple[str, tuple[str, ...]]:
    """Say whether a host is 'up', 'down' or 'stale', and what to clean before it can boot again.

    >>> classify(Observed(True, True, True, 3, True, True))
    ('up', ())
    >>> classify(Observed(False, True, True, 0, True, True))
    ('stale', ('umount', 'del-veth', 'del-netns', 'rm-pidfile'))
    """
    if seen.nspawn_alive and seen.netns and seen.veth and seen.mounted:
        return "up", ()
    present = {
        "kill-nspawn": seen.nspawn_alive,
        "kill-netns-pids": seen.netns_pids > 0,
        "umount": seen.mounted,
        "del-veth": seen.veth,
        "del-netns": seen.netns,
        "rm-pidfile": seen.pid_file,
    }
    actions = tuple(step for step in CLEANUP_ORDER if present[step])
    return ("stale" if actions else "down"), actions

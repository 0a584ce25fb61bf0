"""One lab host on this machine: its disk (an overlay on its release's image), its network namespace and
veth on the lab bridge, its systemd-nspawn process, and taking all of that apart again.

Layout of a host under the state directory (machine-wide, so hosts outlive the command and the checkout):
  hosts/<name>/upper, work   the overlay's writable layer: the host's own disk, kept across down/up
  hosts/<name>/root          where the overlay is mounted and systemd-nspawn boots from
  hosts/<name>/image         the image the disk was made from (a new image means a new disk)
  hosts/<name>/nspawn.pid    the pid of systemd-nspawn; nspawn.log its console and errors
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from pathlib import Path

from fleet_spec import Fleet, FleetError, Host, Observed, classify, hosts_file
from fleet_sys import (
    cmdline,
    is_mounted,
    kill,
    kill_rooted_at,
    link_exists,
    netns_exists,
    netns_pids,
    pid_alive,
    read_pid,
    run,
    unmount_under,
)

NFT_TABLE = "toolkit_lab"


def host_dir(state: Path, host: Host) -> Path:
    return state / "hosts" / host.name


def nspawn_pid(state: Path, host: Host) -> int | None:
    """The recorded pid, if it is still systemd-nspawn booting this host's root (not a recycled pid)."""
    hd = host_dir(state, host)
    pid = read_pid(hd / "nspawn.pid")
    if pid is None or not pid_alive(pid):
        return None
    args = cmdline(pid)
    if not args or not args[0].endswith("systemd-nspawn") or f"--directory={hd / 'root'}" not in args:
        return None
    return pid


def observe(state: Path, host: Host) -> Observed:
    hd = host_dir(state, host)
    return Observed(
        nspawn_alive=nspawn_pid(state, host) is not None,
        pid_file=(hd / "nspawn.pid").exists(),
        netns=netns_exists(host.netns),
        netns_pids=len(netns_pids(host.netns)),
        veth=link_exists(host.veth),
        mounted=is_mounted(hd / "root"),
    )


def clean(state: Path, host: Host, actions: tuple[str, ...]) -> None:
    """Run the cleanup steps classify() chose, in its order."""
    hd = host_dir(state, host)
    for action in actions:
        if action == "kill-nspawn":
            pid = nspawn_pid(state, host)
            if pid is not None:
                kill(pid)
                wait_gone([pid], 10)
        elif action == "kill-netns-pids":
            # Killing the container's init ends its whole pid namespace; anything else left goes too.
            pids = netns_pids(host.netns)
            for pid in pids:
                kill(pid)
            wait_gone(pids, 10)
        elif action == "umount":
            kill_rooted_at(hd / "root")
            unmount_under(hd / "root")
        elif action == "del-veth":
            run(["ip", "link", "del", host.veth], check=False)
        elif action == "del-netns":
            run(["ip", "netns", "del", host.netns], what=f"removing namespace {host.netns}")
        elif action == "rm-pidfile":
            (hd / "nspawn.pid").unlink(missing_ok=True)
    if actions:
        remove_cgroups(host)


def wait_gone(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(pid_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def ensure_bridge(fleet: Fleet) -> None:
    """The controller's side of the lab network, and a firewall that keeps it from routing anywhere."""
    net = fleet.network
    if not link_exists(net.bridge):
        run(["ip", "link", "add", net.bridge, "type", "bridge"], what=f"creating bridge {net.bridge}")
    cidr = f"{net.controller}/{net.subnet.prefixlen}"
    if cidr not in run(["ip", "-o", "-4", "addr", "show", "dev", net.bridge]).stdout:
        run(["ip", "addr", "flush", "dev", net.bridge])
        run(["ip", "addr", "add", cidr, "dev", net.bridge], what=f"addressing bridge {net.bridge}")
    run(["ip", "link", "set", net.bridge, "up"])
    # Defence in depth: the hosts have no default route, and nothing is forwarded between the bridge and
    # any other interface. Host-to-host frames stay on the bridge; where br_netfilter is loaded (it is
    # here) they pass this hook too, with the bridge as both interfaces, and are accepted.
    rules = (
        f"table inet {NFT_TABLE} {{\n chain forward {{\n"
        "  type filter hook forward priority 0; policy accept;\n"
        f'  iifname "{net.bridge}" oifname "{net.bridge}" accept\n'
        f'  iifname "{net.bridge}" drop\n  oifname "{net.bridge}" drop\n }}\n}}\n'
    )
    run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)
    nft = subprocess.run(["nft", "-f", "-"], input=rules, text=True, capture_output=True, check=False)  # noqa: S607
    if nft.returncode != 0:
        tail = (nft.stderr.strip().splitlines() or ["no message"])[-1]
        raise FleetError(f"fleet: nft could not load the lab's forward guard: {tail}")


def remove_bridge(fleet: Fleet) -> None:
    if link_exists(fleet.network.bridge):
        run(["ip", "link", "del", fleet.network.bridge], what=f"removing bridge {fleet.network.bridge}")
    run(["nft", "delete", "table", "inet", NFT_TABLE], check=False)


def make_disk(state: Path, host: Host, image: Path) -> str:
    """Mount the host's overlay; a disk made from another image is replaced. Returns what was done."""
    hd = host_dir(state, host)
    record = hd / "image"
    note = "disk kept"
    if record.exists() and record.read_text().strip() != image.name:
        run(["rm", "-rf", "--one-file-system", str(hd / "upper"), str(hd / "work")])
        note = f"new disk (image changed to {image.name})"
    elif not record.exists():
        note = "new disk"
    for sub in ("upper", "work", "root"):
        (hd / sub).mkdir(parents=True, exist_ok=True)
    record.write_text(image.name + "\n")
    options = f"lowerdir={image},upperdir={hd / 'upper'},workdir={hd / 'work'}"
    run(
        ["mount", "-t", "overlay", "overlay", "-o", options, str(hd / "root")],
        what=f"mounting {host.name}'s disk",
    )
    return note


def inject(root: Path, host: Host, fleet: Fleet, public_key: str, user: str) -> None:
    """What is per host or per checkout, written into the host's disk before it boots."""
    (root / "etc/hostname").write_text(host.name + "\n")
    (root / "etc/hosts").write_text(hosts_file(fleet))
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(secrets.token_hex(16) + "\n")
    run(["ssh-keygen", "-A", "-f", str(root)], what=f"making {host.name}'s SSH host keys")
    authorize(root, public_key, user)


def authorize(root: Path, public_key: str, user: str) -> None:
    """Add this checkout's key to the user's authorized_keys (other checkouts' keys stay)."""
    uid = gid = None
    home = ""
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user:
            uid, gid, home = int(fields[2]), int(fields[3]), fields[5]
    if uid is None or gid is None:
        raise FleetError(
            f"fleet: the image has no user {user!r}; rebuild it (remove its directory under images/)"
        )
    ssh_dir = root / home.lstrip("/") / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    keys = ssh_dir / "authorized_keys"
    lines = keys.read_text().splitlines() if keys.exists() else []
    if public_key.strip() not in lines:
        keys.write_text("\n".join([*lines, public_key.strip()]) + "\n")
    for path in (ssh_dir, keys):
        os.chown(path, uid, gid)
    ssh_dir.chmod(0o700)
    keys.chmod(0o600)


def host_keys(root: Path) -> list[str]:
    """The host's public SSH keys as 'type base64' pairs, for the checkout's known_hosts."""
    keys = []
    for path in sorted(root.glob("etc/ssh/ssh_host_*_key.pub")):
        kind, blob = path.read_text().split()[:2]
        keys.append(f"{kind} {blob}")
    return keys


def make_network(fleet: Fleet, host: Host) -> None:
    ns, veth = host.netns, host.veth
    run(["ip", "netns", "add", ns], what=f"creating namespace {ns}")
    run(
        ["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns],
        what=f"creating {veth}",
    )
    run(["ip", "link", "set", veth, "master", fleet.network.bridge, "up"])
    cidr = f"{host.address}/{fleet.network.subnet.prefixlen}"
    run(["ip", "-n", ns, "addr", "add", cidr, "dev", "eth0"], what=f"addressing {host.name}")
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])


# systemd-nspawn --keep-unit puts the container in "payload" beside itself in its own cgroup. Started from
# the same cgroup, every host would share one tree (measured: all seven in /payload/init.scope, so a unit
# of one host shared its cgroup with the same unit of the others, and a host booted after a killed one
# failed units with 219/CGROUP). Each host therefore starts in a cgroup of its own, in every hierarchy
# systemd uses here: cgroup2 and the named systemd v1 hierarchy (hybrid), or the cgroup2 root alone.
CGROUP_ROOTS = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")


def cgroup_dirs(host: Host) -> list[Path]:
    return [Path(r) / "toolkit-lab" / host.name for r in CGROUP_ROOTS if Path(r, "cgroup.procs").exists()]


def remove_cgroups(host: Host) -> None:
    """Remove the host's cgroup trees, deepest first (only empty ones can go; the processes are gone)."""
    for top in cgroup_dirs(host):
        if top.is_dir():
            for path in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                with contextlib.suppress(OSError):
                    path.rmdir()
            with contextlib.suppress(OSError):
                top.rmdir()


def spawn(state: Path, host: Host) -> int:
    """Boot the host detached (its own session; console and errors to nspawn.log) and record its pid."""
    hd = host_dir(state, host)
    cmd = [
        "systemd-nspawn", "--quiet", "--register=no", "--keep-unit", "--boot",
        f"--directory={hd / 'root'}", f"--machine={host.name}",
        f"--network-namespace-path=/run/netns/{host.netns}",
        "--console=passive", "--link-journal=no", "--resolv-conf=off", "--timezone=off",
    ]  # fmt: skip
    remove_cgroups(host)
    cgroups = cgroup_dirs(host)
    for path in cgroups:
        path.mkdir(parents=True, exist_ok=True)

    def enter_cgroups() -> None:  # in the child, before exec: nspawn starts in the host's own cgroup
        for path in cgroups:
            (path / "cgroup.procs").write_text("0\n")

    with open(hd / "nspawn.log", "ab") as log:
        log.write(f"\n--- boot {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        log.flush()
        proc = subprocess.Popen(  # noqa: S603
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=enter_cgroups,  # noqa: PLW1509 (single-threaded here: the waits start after)
        )
    (hd / "nspawn.pid").write_text(f"{proc.pid}\n")
    return proc.pid


def power_off(state: Path, hosts: list[Host], seconds: float) -> list[str]:
    """Power hosts off: SIGRTMIN+4 (systemd's poweroff signal) to the container's init, the child of
    systemd-nspawn, which then exits. Measured here: trixie's systemd ignored nspawn's own SIGTERM
    path (SIGRTMIN+3, "halt") for 60 s, and powered off in 2 s on SIGRTMIN+4; bookworm does both.
    Hosts still running after `seconds` are killed. Returns the names of the hosts that had to be."""
    pids = {h.name: nspawn_pid(state, h) for h in hosts}
    for pid in pids.values():
        if pid is None:
            continue
        inits = children(pid)
        for init in inits:
            kill(init, signal.SIGRTMIN + 4)
        if not inits:  # not yet forked: nspawn forwards its own shutdown signal
            kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + seconds
    killed = []
    for host in hosts:
        pid = pids[host.name]
        if pid is None:
            continue
        if not wait_gone([pid], max(0.0, deadline - time.monotonic())):
            kill(pid)
            killed.append(host.name)
    return killed


def children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def teardown(state: Path, host: Host) -> tuple[str, ...]:
    """Take apart whatever is left of a host that is no longer running; returns the steps taken."""
    _state, actions = classify(observe(state, host))
    clean(state, host, actions)
    return actions

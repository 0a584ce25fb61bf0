"""What every drill needs from the lab: the demo app's nodes, extra instances, SQL as the superuser.

The lab is the fleet of inventory/lab: the drills run on this machine (the controller) and reach the
app nodes over the network at their addresses, the hosts over SSH as Ansible does (the inventory's
``ansible_user`` and ``ansible_ssh_common_args``). Drills call doctor, the audits and the runbooks as
an operator would, through ``python -m toolkit`` with ``--format json``, so what they prove is what
the commands do.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.drills.http_load import request
from toolkit.adapters import inventory
from toolkit.adapters.errors import TargetError
from toolkit.domain.errors import InventoryError

DEMO_ROOT = "/opt/toolkit-demo"  # the role's django_demo_root, on each app host
SERVE = f"{DEMO_ROOT}/bin/serve"
DEMO_USER = "toolkit-demo"  # the role's django_demo_user
UNIT_PREFIX = "toolkit-drill-"  # transient units of extra instances; a stale one is removed first
INSTANCE_MAX_S = 900  # an extra instance ends on its own after this, should the drill be killed
_INVENTORY_DIR = re.compile(r"\{\{\s*inventory_dir\s*\}\}")
# One connection per host, reused: a new SSH login costs 0.6 s on the lab, a command over it 0.05 s;
# the master ends on its own 30 s after its last use.
MULTIPLEX = (
    "-o",
    "ControlMaster=auto",
    "-o",
    "ControlPath=/tmp/toolkit-lab-ssh-%C",
    "-o",
    "ControlPersist=30",
)


@dataclass(frozen=True)
class Node:
    """One app node of the demo: its inventory name, server kind, port and the address it serves on."""

    name: str
    server: str
    port: int
    address: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """Base URL at the node's address."""
        return f"http://{self.address}:{self.port}"

    def at(self, port: int) -> str:
        """Base URL of another instance on the node's host."""
        return f"http://{self.address}:{port}"


@dataclass(frozen=True)
class Lab:
    """The lab inventory, its demo nodes, and how to reach its hosts over SSH."""

    inventory: str
    nodes: tuple[Node, ...]
    db_host: str = ""
    ssh_args: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pgbouncers: Mapping[str, str] = field(default_factory=dict)  # PgBouncer host -> its listen address

    @classmethod
    def load(cls, inventory_path: str) -> Lab:
        """Read the demo nodes (hosts of group ``django`` with ``django_demo_port``) and the SSH routes."""
        data = inventory.load(inventory_path)
        nodes = []
        for name in data.groups.get("django", []):
            hv = data.hostvars.get(name, {})
            if "django_demo_port" in hv:
                address = str(hv.get("django_demo_bind") or hv.get("ansible_host") or name)
                server = str(hv.get("django_server", "wsgi_sync"))
                nodes.append(Node(name, server, int(hv["django_demo_port"]), address))
        if not nodes:
            raise InventoryError(
                "django_demo_port",
                None,
                f"no host of group 'django' in {inventory_path} sets it: drills run on the lab inventory "
                "with the demo deployed ('make lab')",
            )
        db = list(data.groups.get("postgresql", []))
        base = Path(inventory_path).resolve()
        base = base if base.is_dir() else base.parent
        routes = {host: ssh_argv(host, hv, base) for host, hv in data.hostvars.items()}
        tier = {
            host: str(hv.get("pgbouncer_listen_addr") or hv.get("ansible_host") or host)
            for host in data.groups.get("pgbouncer", [])
            for hv in (data.hostvars.get(host, {}),)
        }
        return cls(inventory_path, tuple(nodes), db[0] if db else "", routes, tier)

    def node(self, server_prefix: str) -> Node:
        """The first node whose server kind starts with ``server_prefix`` (``wsgi`` or ``asgi``)."""
        for node in self.nodes:
            if node.server.startswith(server_prefix):
                return node
        raise TargetError(self.inventory, "choosing a demo node", f"no {server_prefix} node", "see hosts.yml")

    def check_up(self) -> None:
        """Every demo node answers /healthz, or one line says which does not."""
        for node in self.nodes:
            request(f"{node.url}/healthz", timeout=5)

    def ssh(self, host: str, command: str, stdin: str = "", timeout: float = 60) -> str:
        """Run ``command`` on ``host`` over SSH (input on stdin, never in argv); return its stdout."""
        if host not in self.ssh_args:
            raise TargetError(self.inventory, f"ssh to {host}", "no such host", "see hosts.yml")
        try:
            done = subprocess.run(  # noqa: S603 (ssh with the inventory's own options)
                [*self.ssh_args[host], command],
                input=stdin,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            what, hint = command.split(maxsplit=1)[0], "is the lab up? (make lab)"
            raise TargetError(f"ssh:{host}", what, f"no answer in {timeout:g} s", hint) from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
            raise TargetError(f"ssh:{host}", command[:60], last, "is the lab up? (make lab)")
        return done.stdout

    def superuser_sql(self, sql: str, database: str = "app") -> str:
        """Run SQL as postgres on the database host (``sudo -n -u postgres psql``, SQL on stdin; lab only)."""
        if not self.db_host:
            raise TargetError(self.inventory, "superuser SQL", "no host in group postgresql", "see hosts.yml")
        command = f"sudo -n -u postgres psql -X -q -A -t -v ON_ERROR_STOP=1 -d {shlex.quote(database)}"
        return self.ssh(self.db_host, command, stdin=sql + "\n", timeout=30).strip()


@contextmanager
def inventory_with(lab: Lab, settings_env: Mapping[str, str]) -> Iterator[str]:
    """A private copy of the lab inventory whose app nodes import their settings with ``settings_env`` added.

    doctor reads each node's settings on its host with the node's ``django_settings_env``; this is how
    a drill shows doctor the environment it gave its extra instances. The copy's ``host_vars`` set
    that variable and, literally, the SSH arguments the original resolves from its own directory.
    """
    data = inventory.load(lab.inventory)
    source = Path(lab.inventory).resolve()
    base = source if source.is_dir() else source.parent
    with tempfile.TemporaryDirectory(prefix="toolkit-drill-inventory-") as tmp:
        copy = Path(tmp) / "lab"
        if source.is_dir():
            shutil.copytree(source, copy)
        else:
            copy.mkdir()
            shutil.copy2(source, copy / source.name)
        (copy / "host_vars").mkdir(exist_ok=True)
        for node in lab.nodes:
            hv = data.hostvars.get(node.name, {})
            env = {**dict(hv.get("django_settings_env") or {}), **settings_env}
            common = _INVENTORY_DIR.sub(str(base), str(hv.get("ansible_ssh_common_args") or ""))
            own = {"django_settings_env": env, "ansible_ssh_common_args": common}
            (copy / "host_vars" / f"{node.name}.yml").write_text(json.dumps(own), encoding="utf-8")
        yield str(copy)


@contextmanager
def deployed_source(lab: Lab, node: Node) -> Iterator[str]:
    """The app's source as deployed on ``node``'s host (``DEMO_ROOT/app``), copied here over SSH."""
    with tempfile.TemporaryDirectory(prefix="toolkit-drill-source-") as tmp:
        archive = Path(tmp) / "app.tar"
        done = subprocess.run(  # noqa: S603 (ssh with the inventory's own options)
            [*lab.ssh_args[node.name], f"tar -C {DEMO_ROOT}/app -cf - --exclude=__pycache__ ."],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise TargetError(f"ssh:{node.name}", f"reading {DEMO_ROOT}/app", "tar failed", "make lab")
        archive.write_bytes(done.stdout)
        target = Path(tmp) / "app"
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
        yield str(target)


def ssh_argv(host: str, hostvars: Mapping[str, Any], inventory_dir: Path) -> tuple[str, ...]:
    """``ssh`` and its options for ``host`` as Ansible reaches it (the one template: ``{{ inventory_dir }}``).

    >>> argv = ssh_argv("app1", {"ansible_host": "198.18.0.13", "ansible_user": "ops",
    ...     "ansible_ssh_common_args": "-F {{ inventory_dir }}/cfg"}, Path("/inv"))
    >>> argv[:3], argv[-5:]
    (('ssh', '-F', '/inv/cfg'), ('-o', 'BatchMode=yes', '-l', 'ops', '198.18.0.13'))
    """
    common = _INVENTORY_DIR.sub(str(inventory_dir), str(hostvars.get("ansible_ssh_common_args") or ""))
    argv = ["ssh", *shlex.split(common), *MULTIPLEX, "-o", "BatchMode=yes"]
    if hostvars.get("ansible_user"):
        argv += ["-l", str(hostvars["ansible_user"])]
    if hostvars.get("ansible_port"):
        argv += ["-p", str(hostvars["ansible_port"])]
    return (*argv, str(hostvars.get("ansible_host") or host))


def toolkit(
    args: Sequence[str], env: Mapping[str, str] | None = None, timeout: float = 120
) -> tuple[int, Any]:
    """Run ``python -m toolkit ARGS`` and return its exit code and parsed JSON output."""
    done = subprocess.run(  # noqa: S603 (our own CLI, fixed argv)
        [sys.executable, "-m", "toolkit", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    try:
        return done.returncode, json.loads(done.stdout)
    except ValueError:
        last = (done.stderr or done.stdout).strip().splitlines()
        raise TargetError(
            "toolkit " + " ".join(args[:2]),
            "a drill step",
            last[-1] if last else f"exit {done.returncode}",
            "run the command by hand",
        ) from None


def finding_ids(document: Any) -> list[str]:
    """The finding ids of a doctor or audit JSON document."""
    return [f["id"] for f in document.get("findings", [])]


def wait_for(check: Any, deadline_s: float, interval_s: float = 1.0) -> tuple[float | None, Any]:
    """Call ``check()`` until it returns something true; return (seconds taken or None, last value)."""
    started = time.monotonic()
    last: Any = None
    while time.monotonic() - started < deadline_s:
        last = check()
        if last:
            return time.monotonic() - started, last
        time.sleep(interval_s)
    return None, last


# Run as root on the app host (program and parameters on stdin, see _program): remove a stale instance
# of the same name, copy the node's config with the overrides into a directory only root and the app's group
# read (it holds passwords; the copy never leaves the host), start serve as the app's user in a
# transient unit that ends on its own after INSTANCE_MAX_S.
_START = """\
import grp, os, subprocess
unit, etc = p["unit"], "/run/" + p["unit"]
subprocess.run(["systemctl", "stop", unit + ".service"], capture_output=True)
subprocess.run(["systemctl", "reset-failed", unit + ".service"], capture_output=True)
subprocess.run(["rm", "-rf", etc], check=True)
gid = grp.getgrnam(p["user"]).gr_gid
os.mkdir(etc, 0o750); os.chown(etc, 0, gid)
with open(p["root"] + "/etc/" + p["node"] + ".json", encoding="utf-8") as f:
    config = json.load(f)
for key, value in p["overrides"].items():  # one level deep: {"database": {"host": ...}} keeps the rest
    if isinstance(value, dict) and isinstance(config.get(key), dict):
        config[key].update(value)
    else:
        config[key] = value
fd = os.open(etc + "/" + p["node"] + ".json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
os.fchown(fd, 0, gid)
with os.fdopen(fd, "w", encoding="utf-8") as f:
    json.dump(config, f)
env = dict(p["env"], TOOLKIT_DEMO_ETC=etc)
argv = ["systemd-run", "--unit=" + unit, "--collect", "--quiet", "--uid=" + p["user"], "--gid=" + p["user"],
        "-p", "RuntimeMaxSec=%d" % p["max_s"], "-p", "PrivateTmp=yes", "-p", "KillMode=control-group",
        *["--setenv=%s=%s" % kv for kv in sorted(env.items())], p["serve"], p["node"], str(p["port"])]
subprocess.run(argv, check=True)
"""
_STOP = """\
import subprocess
subprocess.run(["systemctl", "stop", p["unit"] + ".service"], capture_output=True)
subprocess.run(["systemctl", "reset-failed", p["unit"] + ".service"], capture_output=True)
subprocess.run(["rm", "-rf", "/run/" + p["unit"]], check=True)
"""


def unit_name(node: str, port: int) -> str:
    """The transient unit of an extra instance (``toolkit-drill-app1-8101``)."""
    return f"{UNIT_PREFIX}{node}-{port}"


@contextmanager
def extra_instances(
    lab: Lab,
    specs: Sequence[tuple[Node, int]],
    env: Mapping[str, str] | None = None,
    wait_s: float = 60,
    overrides: Mapping[str, Any] | None = None,
    by_port: Mapping[int, Mapping[str, Any]] | None = None,
) -> Iterator[list[str]]:
    """Start ``serve NODE PORT`` on each node's host, wait for /healthz from here, remove them all on exit.

    Each instance is a transient systemd unit (``sudo -n systemd-run``) running as the demo user with
    a copy of the node's config file, ``overrides`` applied one level deep (for example ``{"workers":
    1, "threads": 27, "database": {"host": "198.18.0.11"}}``), in ``/run/<unit>`` on the host.
    ``by_port`` adds overrides of one instance, by its port. On the way out, failure included, every
    unit is stopped and its directory removed.
    """
    started: list[tuple[Node, int]] = []
    try:
        for node, port in specs:
            started.append((node, port))
            own = {**(overrides or {}), **(by_port or {}).get(port, {})}
            start = _program(_START, _params(node, port, env, own))
            lab.ssh(node.name, "sudo -n python3 -", stdin=start)
        urls = [node.at(port) for node, port in specs]
        for url in urls:
            took, _ = wait_for(lambda u=url: _answers(u), wait_s, 0.3)
            if took is None:
                raise TargetError(
                    url,
                    "starting a demo instance",
                    f"no answer in {wait_s:g} s",
                    "see 'journalctl -u toolkit-drill-*' on the app host",
                )
        yield urls
    finally:
        for node, port in started:
            try:
                stop = _program(_STOP, {"unit": unit_name(node.name, port)})
                lab.ssh(node.name, "sudo -n python3 -", stdin=stop)
            except TargetError as exc:
                print(f"drill: could not remove {unit_name(node.name, port)}: {exc}", file=sys.stderr)


def _params(
    node: Node, port: int, env: Mapping[str, str] | None, overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    return {
        "unit": unit_name(node.name, port),
        "node": node.name,
        "port": port,
        "root": DEMO_ROOT,
        "serve": SERVE,
        "user": DEMO_USER,
        "env": dict(env or {}),
        "overrides": dict(overrides or {}),
        "max_s": INSTANCE_MAX_S,
    }


def _program(body: str, params: Mapping[str, Any]) -> str:
    """A Python program for the host's python3 on stdin: ``p``, the parameters, then ``body``.

    >>> print(_program("print(p['a'])", {"a": 1}))
    import json
    p = json.loads('{"a": 1}')
    print(p['a'])
    """
    return f"import json\np = json.loads({json.dumps(dict(params))!r})\n{body}"


def _answers(url: str) -> bool:
    try:
        request(f"{url}/healthz", timeout=2)
    except TargetError:
        return False
    return True

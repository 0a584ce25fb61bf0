"""What every drill needs from the lab: the demo app's nodes, extra instances, and the toolkit's own CLI.

Drills call doctor, the audits and the runbooks as an operator would, through ``python -m toolkit``
with ``--format json``, so what they prove is what the commands do.
"""

from __future__ import annotations

import grp
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.drills.http_load import request
from toolkit.adapters import inventory
from toolkit.adapters.errors import TargetError
from toolkit.domain.errors import InventoryError

DEMO_ROOT = Path("/opt/toolkit-demo")
SERVE = DEMO_ROOT / "bin" / "serve"
DEMO_USER = "toolkit-demo"  # the role's django_demo_user


@dataclass(frozen=True)
class Node:
    """One app node of the demo: its inventory name, server kind and base URL."""

    name: str
    server: str
    port: int

    @property
    def url(self) -> str:
        """Base URL on loopback."""
        return f"http://127.0.0.1:{self.port}"


@dataclass(frozen=True)
class Lab:
    """The lab inventory and its demo nodes."""

    inventory: str
    nodes: tuple[Node, ...]

    @classmethod
    def load(cls, inventory_path: str) -> Lab:
        """Read the demo nodes (hosts of group ``django`` with ``django_demo_port``)."""
        data = inventory.load(inventory_path)
        nodes = []
        for name in data.groups.get("django", []):
            hv = data.hostvars.get(name, {})
            if "django_demo_port" in hv:
                nodes.append(
                    Node(name, str(hv.get("django_server", "wsgi_sync")), int(hv["django_demo_port"]))
                )
        if not nodes:
            raise InventoryError(
                "django_demo_port",
                None,
                f"no host of group 'django' in {inventory_path} sets it: drills run on the lab inventory "
                "with the demo deployed ('make lab')",
            )
        return cls(inventory_path, tuple(nodes))

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


@contextmanager
def extra_instances(
    specs: Sequence[tuple[str, int]],
    env: Mapping[str, str] | None = None,
    wait_s: float = 60,
    overrides: Mapping[str, Any] | None = None,
) -> Iterator[list[str]]:
    """Start ``serve NODE PORT`` for each (node, port), wait for /healthz, stop them all on exit.

    ``overrides`` (for example ``{"server": "wsgi_sync", "workers": 27}``) start the instances with
    a copy of the node's config file that differs in those keys, kept in a private directory only
    the app's group can read and removed on exit.
    """
    if not SERVE.exists():
        raise TargetError(
            str(SERVE), "starting a demo instance", "missing", "deploy the demo with 'make lab'"
        )
    procs: list[subprocess.Popen[bytes]] = []
    stack = ExitStack()
    try:
        if overrides:
            etc = stack.enter_context(_config_copies(sorted({n for n, _ in specs}), overrides))
            env = {**(env or {}), "TOOLKIT_DEMO_ETC": etc}
        for node, port in specs:
            procs.append(
                subprocess.Popen(  # noqa: S603 (the role's launcher, fixed argv)
                    [str(SERVE), node, str(port)],
                    env={**os.environ, **(env or {})},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        urls = [f"http://127.0.0.1:{port}" for _, port in specs]
        for url in urls:
            took, _ = wait_for(lambda u=url: _answers(u), wait_s, 0.3)
            if took is None:
                raise TargetError(
                    url, "starting a demo instance", f"no answer in {wait_s:g} s", "see serve's log"
                )
        yield urls
    finally:
        for proc in procs:
            _stop(proc)
        stack.close()


@contextmanager
def _config_copies(nodes: Sequence[str], overrides: Mapping[str, Any]) -> Iterator[str]:
    """A private directory with each node's config file, ``overrides`` applied (holds passwords)."""
    group = grp.getgrnam(DEMO_USER).gr_gid
    with tempfile.TemporaryDirectory(prefix="toolkit-drill-") as tmp:
        os.chown(tmp, 0, group)
        os.chmod(tmp, 0o750)  # noqa: S103 (root and the app's group only: it holds passwords)
        for node in nodes:
            config = json.loads((DEMO_ROOT / "etc" / f"{node}.json").read_text(encoding="utf-8"))
            write_node_config(Path(tmp) / f"{node}.json", {**config, **overrides}, group)
        yield tmp


def write_node_config(path: Path, config: Mapping[str, Any], group: int) -> None:
    """Write a demo node's config file as the role does: mode 0640, root and the app's group.

    It holds passwords, so it is created with its mode (never readable by others, not even briefly)
    and replaces nothing: an existing file is removed first.
    """
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(config, handle)
    os.chown(path, 0, group)


def _answers(url: str) -> bool:
    try:
        request(f"{url}/healthz", timeout=2)
    except TargetError:
        return False
    return True


def _stop(proc: subprocess.Popen[bytes]) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=10)
            return
        except subprocess.TimeoutExpired:
            continue


def superuser_sql(sql: str, database: str = "app") -> str:
    """Run one statement as the lab's postgres superuser over the local socket (lab only)."""
    done = subprocess.run(  # noqa: S603 (fixed argv)
        [
            "/usr/sbin/runuser",
            "-u",
            "postgres",
            "--",
            "/usr/bin/psql",
            "-X",
            "-q",
            "-A",
            "-t",
            "-d",
            database,
            "-c",
            sql,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise TargetError(
            "postgres (local socket)", sql[:40], done.stderr.strip() or "psql failed", "is the lab up?"
        )
    return done.stdout.strip()

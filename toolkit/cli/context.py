"""One context for every command that reads an inventory: load it once, the same way everywhere.

:func:`load_context` is the preamble the commands shared: resolve which inventory (``-i``, else
ansible's default), read it through ``ansible-inventory`` (with the vault flags), build the topology,
plan it, find the endpoints (with the access model: users, databases, admin user, defaults) and locate
the secrets. Commands that act on live systems pass ``announce=True``: one line on stderr names the
inventory read and why, so a forgotten ``-i`` cannot go unnoticed (stdout stays the command's output).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from toolkit.adapters import inventory
from toolkit.adapters.inventory import InventoryData, InventorySource, Vault
from toolkit.adapters.secrets import Secrets
from toolkit.cli.launch import claim
from toolkit.domain.errors import SizingError, UsageError
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.models import Topology
from toolkit.domain.plan import Plan
from toolkit.domain.sizing import plan
from toolkit.domain.targets import Endpoint, endpoints


@dataclass(frozen=True)
class Context:
    """What a command knows before it touches a live system."""

    source: InventorySource
    data: InventoryData
    topology: Topology
    plan: Plan | None  # None when the topology does not fit: plan_error says why
    plan_error: SizingError | None
    endpoints: tuple[Endpoint, ...]
    secrets: Secrets

    def require_plan(self) -> Plan:
        """The plan, or the sizing error (exit 2) for commands that cannot go on without one."""
        if self.plan_error is not None:
            raise self.plan_error
        assert self.plan is not None
        return self.plan

    def of_kind(self, kind: str) -> list[Endpoint]:
        """The endpoints of one kind (pgbouncer, postgres, redis)."""
        return [e for e in self.endpoints if e.kind == kind]


def load_context(
    inventory_path: str | None,
    secrets_dir: str | None = None,
    vault: Vault = inventory.NO_VAULT,
    *,
    announce: bool = False,
    pending: inventory.PendingRead | None = None,
) -> Context:
    """Read the inventory and derive everything the commands need from it; no network.

    ``pending``: the read of the same inventory already started (:func:`toolkit.cli.plan.plan_command`
    starts it before its imports, which then run while ansible-inventory does).
    """
    if inventory_path is not None and not inventory_path.strip():
        raise UsageError("is empty; pass an inventory file or directory", "-i")
    source = inventory.resolve(inventory_path)
    if source is None:
        raise UsageError(
            "no inventory: pass -i FILE_OR_DIR, or set inventory = in ansible.cfg (or ANSIBLE_INVENTORY)",
            "-i",
        )
    if announce:
        print(f"toolkit: inventory {source.describe()}", file=sys.stderr)
    if pending is None:  # the read the console script started for this command line (toolkit/cli/launch.py)
        pending = claim(source.paths, vault)
    data = pending.wait() if pending is not None else inventory.load(source.paths, vault=vault)
    topology = topology_from_inventory(data.groups, data.hostvars)
    result, error = _plan(topology)
    return Context(
        source,
        data,
        topology,
        result,
        error,
        endpoints(topology, data.groups, data.hostvars),
        Secrets.locate(source.path, secrets_dir),
    )


def _plan(topology: Topology) -> tuple[Plan | None, SizingError | None]:
    try:
        return plan(topology), None
    except SizingError as exc:
        return None, exc

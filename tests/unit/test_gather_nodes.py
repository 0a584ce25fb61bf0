"""gather reads the app nodes' Django settings in its own pass (real probes in local interpreters).

A node whose settings hang at import is reported as a target it could not read; the other nodes are
read all the same, and the first one read stands for the snapshot's Django profile.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.unit import snapshots as s
from toolkit import gather
from toolkit.adapters.secrets import Secrets
from toolkit.domain.django_nodes import DjangoSource

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "django_settings"


def test_every_node_is_read_in_the_snapshot_and_a_hung_one_is_reported() -> None:
    sources = tuple(
        DjangoSource(node, module, str(FIXTURES), sys.executable)
        for node, module in (
            ("web1", "healthy_behind_pgbouncer"),
            ("web2", "hangs_on_import"),
            ("web3", "fails_to_import"),
        )
    )
    nodes = gather.DjangoNodes(sources, {}, 8.0)
    topo = s.topology()
    snap = gather.snapshot(topo, None, None, [], Secrets(None), 1.0, offline=True, nodes=nodes)
    by_name = {t.name: t for t in snap.targets}
    assert list(by_name) == ["django:web1", "django:web2", "django:web3"]
    assert by_name["django:web1"].ok and by_name["django:web1"].address == "web1:healthy_behind_pgbouncer"
    assert not by_name["django:web2"].ok and "took more than 8 s" in (by_name["django:web2"].error or "")
    assert not by_name["django:web3"].ok and by_name["django:web3"].cause == "error"
    assert set(snap.django_nodes) == {"web1"}
    assert snap.django is not None and snap.django.settings_module == "healthy_behind_pgbouncer"


def test_no_nodes_when_the_inventory_names_no_settings() -> None:
    topo = s.topology()
    assert gather.django_nodes(topo, {}, "inventory/lab", 3.0) is None
    snap = gather.snapshot(topo, None, None, [], Secrets(None), 1.0, offline=True)
    assert (snap.targets, dict(snap.django_nodes), snap.django) == ((), {}, None)

"""Contracts between the layers are types, not strings: the sizing refusal's kind and the target's kind.

The sizing error travels in the snapshot as the typed error (no "kind: message" text to split), each
SizingKind has its capacity finding, and an endpoint of an unknown kind is refused instead of being
read as if it were Redis.
"""

from __future__ import annotations

import pytest

from tests.unit import snapshots as s
from toolkit import gather
from toolkit.adapters.secrets import Secrets
from toolkit.domain.checks import capacity
from toolkit.domain.errors import SizingError, SizingKind
from toolkit.domain.sizing import plan_or_error
from toolkit.domain.targets import Endpoint, EndpointKind


def test_plan_or_error_carries_the_typed_error() -> None:
    topo = s.topology(app_nodes=[s.app_node(pgbouncer_hosts=("nosuch",))])
    plan, error = plan_or_error(topo)
    assert plan is None and isinstance(error, SizingError)
    assert error.kind is SizingKind.ROUTING
    assert plan_or_error(s.topology())[1] is None


def test_the_snapshot_holds_the_error_and_capacity_reads_its_kind() -> None:
    topo = s.topology(app_nodes=[s.app_node(pgbouncer_hosts=("nosuch",))])
    snap = s.snapshot(topo)
    assert isinstance(snap.plan_error, SizingError)
    (finding,) = [f for f in capacity.run(snap) if f.target == "inventory"]
    assert finding.evidence == {"rule": "routing"}
    assert finding.summary == str(snap.plan_error)  # the message itself, nothing split off


@pytest.mark.parametrize("kind", list(SizingKind))
def test_every_sizing_kind_has_its_capacity_finding(kind: SizingKind) -> None:
    snap = s.snapshot(s.topology())
    snap = type(snap)(topology=snap.topology, plan=None, plan_error=SizingError("does not fit: x", kind))
    (finding,) = [f for f in capacity.run(snap) if f.target == "inventory"]
    assert finding.id in {c.id for c in capacity.CATALOG}
    assert finding.summary == "does not fit: x" and finding.evidence == {"rule": str(kind)}


def test_a_sizing_error_refuses_a_kind_that_is_not_a_rule() -> None:
    with pytest.raises(ValueError, match="'memory' is not a valid SizingKind"):
        SizingError("x", "memory")  # type: ignore[arg-type]


def test_an_endpoint_of_an_unknown_kind_is_refused_not_read_as_redis() -> None:
    with pytest.raises(ValueError, match="'memcached' is not a valid EndpointKind"):
        Endpoint("memcached", "m1", "10.0.0.9", 11211, "app")  # type: ignore[arg-type]
    redis = Endpoint("redis", "r1", "10.0.0.8", 6379, "toolkit")  # type: ignore[arg-type]
    assert redis.kind is EndpointKind.REDIS and redis.label == "redis@10.0.0.8:6379"


def test_gather_dispatches_on_every_endpoint_kind() -> None:
    """Each kind gets its own reader; none falls through to another kind's."""
    secrets = Secrets(None, {})
    readers = {
        kind: gather._reader(Endpoint(kind, "h", "198.18.0.99", 1, "u"), secrets, 0.1)
        for kind in EndpointKind
    }
    assert len(readers) == 3
    names = {kind: reader.__code__.co_names for kind, reader in readers.items()}
    assert "pgbouncer" in names[EndpointKind.PGBOUNCER]
    assert "postgres" in names[EndpointKind.POSTGRES]
    assert "redis_state" in names[EndpointKind.REDIS]

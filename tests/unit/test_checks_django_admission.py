"""django.asgi_without_admission_bound: an ASGI node whose MIDDLEWARE bounds nothing (docs/sizing.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from toolkit.domain.checks import django as checks
from toolkit.domain.django import DatabaseAlias, DjangoProfile
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import AppNode, DatabaseCapacity, PgBouncerHost, ServerKind, Topology
from toolkit.domain.snapshot import Snapshot

ALIAS = DatabaseAlias(
    alias="default",
    engine="django.db.backends.postgresql",
    host="10.0.0.5",
    port=6432,
    name="shop",
    user="shop",
    conn_max_age=0,
    conn_health_checks=False,
    disable_server_side_cursors=True,
    atomic_requests=False,
    options={"connect_timeout": 5},
)
BOUND = ("toolkit.django.middleware.BoundedBackends", "django.middleware.common.CommonMiddleware")
COPY = ("demo.middleware.BoundedBackends",)
NONE = ("django.middleware.common.CommonMiddleware",)


def _topology(*servers: ServerKind) -> Topology:
    pgb = PgBouncerHost("pgb1", ("shop",), ("shop",), listen_addr="10.0.0.5")
    nodes = tuple(AppNode(f"app{i}", s, workers=2, threads=4) for i, s in enumerate(servers, 1))
    return Topology(DatabaseCapacity(100, 4, host="10.0.0.9", port=5432), (pgb,), nodes)


def _profile(middleware: tuple[str, ...] | None, slots: object = None) -> DjangoProfile:
    return DjangoProfile("shop.settings", "5.2", (ALIAS,), (), middleware=middleware, backend_slots=slots)


def _found(topology: Topology, **snap: Any) -> list[Finding]:
    return [f for f in checks.run(Snapshot(topology=topology, plan=None, **snap)) if f.id == checks.ADMISSION]


ASGI, GTHREAD = ServerKind.ASGI, ServerKind.WSGI_GTHREAD


@pytest.mark.parametrize(
    ("case", "servers", "middleware", "slots", "expected"),
    [
        ("ASGI, no bound", (ASGI,), NONE, None, Severity.WARNING),
        ("ASGI, empty MIDDLEWARE", (ASGI,), (), None, Severity.WARNING),
        ("ASGI, the toolkit's middleware", (ASGI,), BOUND, 4, None),
        ("ASGI, the demo's copy", (ASGI,), COPY, 4, None),
        ("ASGI, slots below threads", (ASGI,), BOUND, 2, None),
        ("ASGI, slots above threads", (ASGI,), BOUND, 8, Severity.WARNING),
        ("gthread, no bound: its threads are the bound", (GTHREAD,), NONE, None, None),
        ("ASGI, MIDDLEWARE not reported (older probe)", (ASGI,), None, None, None),
    ],
)
def test_condition(
    case: str,
    servers: tuple[ServerKind, ...],
    middleware: tuple[str, ...] | None,
    slots: object,
    expected: Severity | None,
) -> None:
    found = _found(_topology(*servers), django=_profile(middleware, slots))
    assert [f.severity for f in found] == ([expected] if expected else []), case


def test_no_bound_names_the_nodes_the_planned_demand_and_the_remedy() -> None:
    (f,) = _found(_topology(ASGI, GTHREAD, ASGI), django=_profile(NONE))
    assert f.target == "django:shop.settings"
    assert f.summary == (
        "no admission bound in MIDDLEWARE on ASGI node(s) app1, app3: each request in flight holds its "
        "own database connection, so the demand is the concurrent requests, unbounded, not the 16 the "
        "plan counts (workers x threads)"
    )
    assert f.evidence["planned_web_connections"] == {"app1": 8, "app3": 8}
    assert f.evidence["admission_bound"] is False
    assert f.remedy.startswith("add 'toolkit.django.middleware.BoundedBackends' first in MIDDLEWARE")


def test_per_node_profiles_are_judged_per_node_and_reported_once_per_profile() -> None:
    bare, bounded = _profile(NONE), _profile(COPY, 4)
    topology = _topology(ASGI, ASGI, ASGI)
    found = _found(topology, django_nodes={"app1": bare, "app2": bounded, "app3": bare})
    assert [f.evidence["asgi_nodes"] for f in found] == [["app1", "app3"]]


def test_the_lab_demo_settings_do_not_trigger_it() -> None:
    """app2 of the lab: uvicorn 2 x 4, the demo's copy first in MIDDLEWARE, slots from django_threads."""
    lab = replace(_profile(("demo.middleware.BoundedBackends",), 4), settings_module="demo.settings")
    assert _found(_topology(GTHREAD, ASGI), django_nodes={"app1": lab, "app2": lab}) == []


def test_the_profile_reads_middleware_and_slots_from_the_probe_document() -> None:
    doc = {"schema": "toolkit.django-profile/v1", "middleware": list(COPY), "backend_slots": 4}
    profile = DjangoProfile.from_dict(doc)
    assert (profile.middleware, profile.backend_slots) == (COPY, 4)
    assert DjangoProfile.from_dict({"schema": "toolkit.django-profile/v1"}).middleware is None

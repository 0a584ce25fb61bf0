"""django.asgi_without_admission_bound: an ASGI node whose settings bound nothing (docs/sizing.md).

Under ASGI, Django runs each request in a ThreadSensitiveContext of its own, and asgiref gives each
context its own one-thread executor: every request in flight holds its own database connection
(Django 5.2 django/core/handlers/asgi.py:165, asgiref 3.13 asgiref/sync.py:512-532). Nothing in Django,
asgiref or uvicorn bounds that, so the plan's ``workers x threads`` for an ASGI node holds only when
the app admits at most ``threads`` requests per process: toolkit.django.middleware.BoundedBackends
with settings.TOOLKIT_BACKEND_SLOTS, or a class of that name the app carries itself.
"""

from __future__ import annotations

from toolkit.domain.django import DjangoProfile
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.models import AppNode, ServerKind
from toolkit.domain.numbers import as_int
from toolkit.domain.snapshot import Snapshot

ID = "django.asgi_without_admission_bound"
TITLE = "an ASGI node's settings admit every request to the database (no admission bound)"
MIDDLEWARE_CLASS = "BoundedBackends"
PRODUCT_PATH = "toolkit.django.middleware.BoundedBackends"


def bounded(middleware: tuple[str, ...]) -> bool:
    """Whether MIDDLEWARE lists an admission bound (the toolkit's, or a copy of the same name).

    >>> bounded(("django.middleware.common.CommonMiddleware",))
    False
    >>> bounded(("toolkit.django.middleware.BoundedBackends", "x.Y"))
    True
    """
    return any(m.rsplit(".", 1)[-1] == MIDDLEWARE_CLASS for m in middleware)


def _slots(value: object) -> int | None:
    return None if isinstance(value, float) else as_int(value, None)


def findings(snapshot: Snapshot) -> list[Finding]:
    """One finding per settings profile used by ASGI nodes that it leaves unbounded (or too wide)."""
    # Profiles compare by value but do not hash (their OPTIONS are dicts): a list of pairs.
    by_profile: list[tuple[DjangoProfile, tuple[str, ...], list[AppNode]]] = []
    for node in snapshot.topology.app_nodes:
        profile = snapshot.django_nodes.get(node.name) or snapshot.django
        if node.server is not ServerKind.ASGI or profile is None or profile.middleware is None:
            continue
        for seen, _, nodes in by_profile:
            if seen == profile:
                nodes.append(node)
                break
        else:
            by_profile.append((profile, profile.middleware, [node]))
    found: list[Finding] = []
    for profile, middleware, nodes in by_profile:
        slots = _slots(profile.backend_slots)
        has_bound = bounded(middleware)
        wide = [n for n in nodes if slots is not None and slots > n.threads]
        if has_bound and not wide:
            continue
        planned = {n.name: n.web_connections for n in nodes}
        names = ", ".join(n.name for n in (wide if has_bound else nodes))
        summary = (
            f"TOOLKIT_BACKEND_SLOTS is {slots}, above django_threads of ASGI node(s) {names}: each "
            "process admits more requests to the database than the plan counts"
            if has_bound
            else f"no admission bound in MIDDLEWARE on ASGI node(s) {names}: each request in flight "
            "holds its own database connection, so the demand is the concurrent requests, unbounded, "
            f"not the {sum(planned.values())} the plan counts (workers x threads)"
        )
        found.append(
            Finding(
                ID,
                Severity.WARNING,
                f"django:{profile.settings_module}",
                summary,
                {
                    "asgi_nodes": [n.name for n in nodes],
                    "planned_web_connections": planned,
                    "threads": {n.name: n.threads for n in nodes},
                    "admission_bound": has_bound,
                    "backend_slots": slots,
                },
                f"add '{PRODUCT_PATH}' first in MIDDLEWARE and set TOOLKIT_BACKEND_SLOTS to the node's "
                "django_threads (docs/sizing.md, 'What bounds an ASGI worker's connections')",
            )
        )
    return found

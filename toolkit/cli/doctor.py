"""``toolkit doctor``: check the live pools, PostgreSQL, Redis and the Django settings against the plan."""

from __future__ import annotations

import enum
from typing import Annotated

import typer

from toolkit.adapters import inventory
from toolkit.adapters.secrets import Secrets
from toolkit.cli import render_findings as render
from toolkit.domain.checks import known_prefix, run_checks
from toolkit.domain.django import DjangoProfile
from toolkit.domain.findings import worst
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.sizing import plan_or_error
from toolkit.domain.targets import endpoints


class DoctorFormat(enum.StrEnum):
    """Output formats of ``toolkit doctor``."""

    table = "table"
    json = "json"
    prometheus = "prometheus"
    markdown = "markdown"


def doctor_command(
    inventory_path: Annotated[str, typer.Option("-i", "--inventory", help="Inventory file or directory.")],
    offline: Annotated[
        bool, typer.Option("--offline", help="Inventory, plan and Django settings only.")
    ] = False,
    output: Annotated[
        DoctorFormat, typer.Option("--format", "-f", help="Output format.")
    ] = DoctorFormat.table,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Seconds per target (connect and queries).")
    ] = 3.0,
    only: Annotated[str | None, typer.Option("--only", help="Only findings under this id prefix.")] = None,
    secrets_dir: Annotated[
        str | None, typer.Option("--secrets", help="Directory of password files (default: the lab's .lab/).")
    ] = None,
    django_settings: Annotated[
        str | None, typer.Option("--django-settings", help="The app's settings module.")
    ] = None,
    django_pythonpath: Annotated[
        str | None, typer.Option("--django-pythonpath", help="Directory the settings module imports from.")
    ] = None,
    django_python: Annotated[
        str | None, typer.Option("--django-python", help="The app's Python interpreter.")
    ] = None,
) -> None:
    """Report every way the live system departs from a healthy one; exit 0/1/2/3."""
    # Imported here, not at the top: psycopg and redis-py take most of a second to import, and
    # `toolkit --help` and `toolkit plan` should not pay for them.
    from toolkit import gather  # noqa: PLC0415

    if timeout <= 0:
        raise typer.BadParameter("must be above 0", param_hint="--timeout")
    if only and not known_prefix(only):
        raise typer.BadParameter(
            f"no finding id starts with {only!r}; see docs/checks.md", param_hint="--only"
        )
    if django_settings and not django_pythonpath:
        raise typer.BadParameter("needs --django-pythonpath", param_hint="--django-settings")
    data = inventory.load(inventory_path)
    topology = topology_from_inventory(data.groups, data.hostvars)
    result, plan_error = plan_or_error(topology)
    profile = _django(django_settings, django_pythonpath, django_python)
    snap = gather.snapshot(
        topology,
        result,
        plan_error,
        endpoints(topology, data.groups, data.hostvars),
        Secrets.locate(inventory_path, secrets_dir),
        timeout,
        django=profile,
        offline=offline,
    )
    findings = run_checks(snap, only)
    status = worst(findings)
    if output is DoctorFormat.json:
        typer.echo(render.render_json(status, snap.targets, findings))
    elif output is DoctorFormat.prometheus:
        typer.echo(render.render_prometheus(status, snap.targets, findings), nl=False)
    elif output is DoctorFormat.markdown:
        typer.echo(render.render_markdown(status, snap.targets, findings), nl=False)
    else:
        render.render_table(status, snap.targets, findings)
    raise typer.Exit(int(status))


def _django(settings: str | None, pythonpath: str | None, python: str | None) -> DjangoProfile | None:
    if not settings or not pythonpath:
        return None
    from toolkit.adapters.django_settings import load_profile  # noqa: PLC0415 - only when asked

    return load_profile(settings, pythonpath, python)

"""``toolkit doctor``: check the live pools, PostgreSQL, Redis and the Django settings against the plan."""

from __future__ import annotations

import enum
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from toolkit.adapters.files import write_atomic
from toolkit.adapters.inventory import Vault
from toolkit.cli import render_findings as render
from toolkit.cli.context import load_context
from toolkit.cli.numbers import seconds
from toolkit.cli.options import AskVaultPassOption, InventoryOption, SecretsOption, VaultPasswordFileOption
from toolkit.domain.checks import known_prefix, run_checks
from toolkit.domain.django import DjangoProfile
from toolkit.domain.errors import FailedError, UsageError
from toolkit.domain.findings import worst
from toolkit.domain.metrics import metrics
from toolkit.domain.versions import acknowledged_cves


class DoctorFormat(enum.StrEnum):
    """Output formats of ``toolkit doctor``."""

    table = "table"
    json = "json"
    prometheus = "prometheus"
    markdown = "markdown"


def doctor_command(
    inventory_path: InventoryOption = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Inventory, plan and Django settings only.")
    ] = False,
    output: Annotated[
        DoctorFormat, typer.Option("--format", "-f", help="Output format.")
    ] = DoctorFormat.table,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds per target (connect and queries).",
            parser=seconds("--timeout"),
            metavar="SECONDS",
        ),
    ] = 3.0,
    only: Annotated[str | None, typer.Option("--only", help="Only findings under this id prefix.")] = None,
    secrets_dir: SecretsOption = None,
    vault_password_file: VaultPasswordFileOption = None,
    ask_vault_pass: AskVaultPassOption = False,
    django_settings: Annotated[
        str | None, typer.Option("--django-settings", help="The app's settings module.")
    ] = None,
    django_pythonpath: Annotated[
        str | None, typer.Option("--django-pythonpath", help="Directory the settings module imports from.")
    ] = None,
    django_python: Annotated[
        str | None, typer.Option("--django-python", help="The app's Python interpreter.")
    ] = None,
    output_file: Annotated[
        Path | None,
        typer.Option("--output", help="Write the report to FILE atomically (json, prometheus, markdown)."),
    ] = None,
    no_django_nodes: Annotated[
        bool,
        typer.Option(
            "--no-django-nodes",
            help="Do not read the app nodes' Django settings over SSH (a monitor host without SSH to them).",
        ),
    ] = False,
) -> None:
    """Report every way the live system departs from a healthy one; exit 0/1/2/3."""
    # Imported here, not at the top: psycopg and redis-py take most of a second to import, and
    # `toolkit --help` and `toolkit plan` should not pay for them.
    from toolkit import gather  # noqa: PLC0415

    if output_file is not None and output is DoctorFormat.table:
        raise UsageError("needs --format json, prometheus or markdown", "--output")
    if output_file is not None and (
        output_file.is_symlink() or (output_file.exists() and not output_file.is_file())
    ):
        raise UsageError(f"{output_file}: exists and is not a regular file", "--output")
    if output_file is not None and not output_file.parent.is_dir():
        raise UsageError(f"{output_file}: no such directory", "--output")
    if only and not known_prefix(only):
        raise UsageError(f"no finding id starts with {only!r}; see docs/checks.md", "--only")
    if django_settings and not django_pythonpath:
        raise UsageError("needs --django-pythonpath", "--django-settings")
    ctx = load_context(inventory_path, secrets_dir, Vault(vault_password_file, ask_vault_pass), announce=True)
    data = ctx.data
    # Read (and refuse, exit 65) before any network: a distribution's patched build, the app's ACL.
    acknowledged = {h: acknowledged_cves(h, v) for h, v in data.hostvars.items()}
    rules = {
        h: v["redis_app_command_rules"]
        for h, v in data.hostvars.items()
        if isinstance(v.get("redis_app_command_rules"), str)
    }
    profile = _django(django_settings, django_pythonpath, django_python)
    nodes = None
    if profile is None and not no_django_nodes:  # their SSH variables are checked here, before any read
        nodes = gather.django_nodes(ctx.topology, data.hostvars, data.source, timeout)
    snap = gather.snapshot(
        ctx.topology,
        ctx.plan,
        ctx.plan_error,
        ctx.endpoints,
        ctx.secrets,
        timeout,
        django=profile,
        offline=offline,
        processes={h.name: h.processes for h in ctx.topology.pgbouncers},
        nodes=nodes,
    )
    snap = replace(snap, acknowledged_cves=acknowledged, redis_app_rules=rules)
    findings = run_checks(snap, only)
    status = worst(findings)
    if output is DoctorFormat.table:
        render.render_table(status, snap.targets, findings)
        raise typer.Exit(int(status))
    if output is DoctorFormat.json:
        text = render.render_json(status, snap.targets, findings) + "\n"
    elif output is DoctorFormat.prometheus:
        text = render.render_prometheus(status, snap.targets, findings, metrics(snap))
    else:
        text = render.render_markdown(status, snap.targets, findings)
    if output_file is None:
        typer.echo(text, nl=False)
    else:
        try:
            write_atomic(output_file, text)
        except (OSError, ValueError) as exc:
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise FailedError(f"doctor: --output {output_file}: {why}; nothing written") from None
    raise typer.Exit(int(status))


def _django(settings: str | None, pythonpath: str | None, python: str | None) -> DjangoProfile | None:
    if not settings or not pythonpath:
        return None
    from toolkit.adapters.django_settings import load_profile  # noqa: PLC0415 - only when asked

    return load_profile(settings, pythonpath, python)

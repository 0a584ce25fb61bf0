"""Render doctor's result as a table, JSON (schema toolkit.doctor/v1), Prometheus text, or Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from toolkit.domain.findings import Finding, Severity
from toolkit.domain.snapshot import TargetStatus

if TYPE_CHECKING:
    from rich.console import Console

    from toolkit.domain.metrics import Metrics

DOCTOR_SCHEMA = "toolkit.doctor/v1"
_COLOURS = {
    Severity.OK: "green",
    Severity.WARNING: "yellow",
    Severity.CRITICAL: "red",
    Severity.UNKNOWN: "magenta",
}


def as_dict(status: Severity, targets: Sequence[TargetStatus], findings: Sequence[Finding]) -> dict[str, Any]:
    """The JSON document: the same data the table shows."""
    return {
        "schema": DOCTOR_SCHEMA,
        "status": status.label,
        "targets": [
            {
                "name": t.name,
                "kind": t.kind,
                "address": t.address,
                "ok": t.ok,
                "elapsed_s": round(t.elapsed, 3),
                "cause": t.cause,
                "error": t.error,
            }
            for t in targets
        ],
        "findings": [f.to_dict() for f in findings],
    }


def render_json(status: Severity, targets: Sequence[TargetStatus], findings: Sequence[Finding]) -> str:
    """JSON text."""
    return json.dumps(as_dict(status, targets, findings), indent=2, default=str)


def verdict(
    status: Severity, findings: Sequence[Finding], targets: Sequence[TargetStatus], scope: str = "offline"
) -> str:
    """The one-line verdict at the end of the table; ``scope`` names what was read when no target was."""
    counts = {s: sum(1 for f in findings if f.severity is s) for s in Severity}
    down = sum(1 for t in targets if not t.ok)
    plural = {Severity.WARNING: "warnings"}
    parts = [
        f"{counts[s]} {plural.get(s, s.label) if counts[s] > 1 else s.label}"
        for s in (Severity.CRITICAL, Severity.UNKNOWN, Severity.WARNING)
        if counts[s]
    ]
    read = f"{len(targets) - down}/{len(targets)} targets read" if targets else scope
    return f"{status.name}: {', '.join(parts) or 'no findings'} ({read})"


def render_table(
    status: Severity,
    targets: Sequence[TargetStatus],
    findings: Sequence[Finding],
    console: Console | None = None,
    scope: str = "offline",
) -> None:
    """Findings grouped by target, severity in colour, then the verdict."""
    # rich is imported here: the JSON, Prometheus and Markdown outputs do not need it.
    from rich.console import Console  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    out = console or Console()
    if targets:
        t = Table(title="targets", title_justify="left")
        for col in ("target", "kind", "read", "time"):  # addresses and kinds whole; the cause wraps
            t.add_column(col, no_wrap=col != "read", overflow="fold")
        for tgt in targets:
            read = "ok" if tgt.ok else f"[red]{escape(str(tgt.cause))}[/red]"
            t.add_row(escape(tgt.address), escape(tgt.kind), read, f"{tgt.elapsed:.2f} s")
        out.print(t)
    by_target: dict[str, list[Finding]] = {}
    for f in sorted(findings, key=lambda f: (-f.severity if f.severity != Severity.UNKNOWN else -2.5, f.id)):
        by_target.setdefault(f.target, []).append(f)
    for target, group in by_target.items():
        # Summaries carry client-chosen text (application_name): never read it as markup.
        t = Table(title=escape(target), title_justify="left", show_lines=False)
        t.add_column("severity", no_wrap=True)
        t.add_column("finding", no_wrap=True, overflow="fold")  # ids whole at 80 columns; the prose wraps
        t.add_column("summary / remedy", overflow="fold")
        for f in group:
            colour = _COLOURS[f.severity]
            remedy = f"\n[dim]→ {escape(f.remedy)}[/dim]" if f.remedy else ""
            runbook = f"\n[dim]runbook: {escape(f.runbook)}[/dim]" if f.runbook else ""
            t.add_row(
                f"[{colour}]{f.severity.label}[/{colour}]",
                escape(f.id),
                f"{escape(f.summary)}{remedy}{runbook}",
            )
        out.print(t)
    colour = _COLOURS[status]
    out.print(f"[bold {colour}]{escape(verdict(status, findings, targets, scope))}[/bold {colour}]")


def render_prometheus(
    status: Severity,
    targets: Sequence[TargetStatus],
    findings: Sequence[Finding],
    rows: Metrics | None = None,
) -> str:
    """Text exposition for node_exporter's textfile collector, built with prometheus_client.

    With ``rows``, the gauges of live use against the plan follow (toolkit/cli/render_metrics.py).

    Every series is unique: findings are aggregated per (id, target), with the worst severity as the
    value of ``toolkit_doctor_finding`` and their number in ``toolkit_doctor_finding_count`` (two
    sessions idle in a transaction on one database are one series with a count of 2). The runbook that
    fixes a finding is an info series, ``toolkit_doctor_finding_runbook{id, runbook} 1``, joined on
    ``id`` (the finding series keep their labels). Label values are escaped by prometheus_client.
    """
    from prometheus_client import CollectorRegistry, Gauge, generate_latest  # noqa: PLC0415

    registry = CollectorRegistry()
    Gauge(
        "toolkit_doctor_status", "Overall status (0 ok, 1 warning, 2 critical, 3 unknown).", registry=registry
    ).set(int(status))
    up = Gauge(
        "toolkit_doctor_target_up",
        "Whether doctor could read the target.",
        ["name", "kind", "address"],
        registry=registry,
    )
    read: dict[tuple[str, str, str], bool] = {}
    for t in targets:
        key = (t.name, t.kind, t.address)
        read[key] = read.get(key, True) and t.ok
    for key, ok in read.items():
        up.labels(*key).set(int(ok))
    worst = Gauge(
        "toolkit_doctor_finding",
        "Worst severity of the findings with this id on this target (1 warning, 2 critical, 3 unknown).",
        ["id", "target"],
        registry=registry,
    )
    count = Gauge(
        "toolkit_doctor_finding_count",
        "Number of findings with this id on this target.",
        ["id", "target"],
        registry=registry,
    )
    grouped: dict[tuple[str, str], list[Finding]] = {}
    for f in findings:
        grouped.setdefault((f.id, f.target), []).append(f)
    fixes = Gauge(
        "toolkit_doctor_finding_runbook",
        "The runbook that fixes findings with this id (always 1; join on id: toolkit runbook show RUNBOOK).",
        ["id", "runbook"],
        registry=registry,
    )
    for (fid, target), group in grouped.items():
        worst.labels(fid, target).set(max(int(f.severity) for f in group))
        count.labels(fid, target).set(len(group))
    for fid, runbook in sorted({(f.id, f.runbook) for f in findings if f.runbook}):
        fixes.labels(fid, runbook).set(1)
    if rows is not None:
        from toolkit.cli.render_metrics import register  # noqa: PLC0415

        register(registry, rows)
    return generate_latest(registry).decode()


def _cell(text: str) -> str:
    """One Markdown table cell: no pipe and no newline may end the row early."""
    return " ".join(text.split()).replace("|", "\\|")


def render_markdown(status: Severity, targets: Sequence[TargetStatus], findings: Sequence[Finding]) -> str:
    """A block to paste into an incident ticket."""
    lines = [f"## toolkit doctor: {verdict(status, findings, targets)}", ""]
    if targets:
        lines += ["| target | kind | read | time |", "| --- | --- | --- | --- |"]
        lines += [
            f"| {_cell(t.address)} | {t.kind} | {'ok' if t.ok else _cell(str(t.cause))} | {t.elapsed:.2f} s |"
            for t in targets
        ]
        lines.append("")
    if findings:
        lines += [
            "| severity | finding | target | summary | remedy | runbook |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for f in findings:
            cells = [f.severity.label, f"`{f.id}`", f.target, f.summary, f.remedy, f.runbook or ""]
            lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"

"""Render doctor's result as a table, JSON (schema toolkit.doctor/v1), Prometheus text, or Markdown."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from toolkit.domain.findings import Finding, Severity
from toolkit.domain.snapshot import TargetStatus

if TYPE_CHECKING:
    from rich.console import Console

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
        for col in ("target", "kind", "read", "time"):
            t.add_column(col)
        for tgt in targets:
            read = "ok" if tgt.ok else f"[red]{escape(str(tgt.cause))}[/red]"
            t.add_row(escape(tgt.address), tgt.kind, read, f"{tgt.elapsed:.2f} s")
        out.print(t)
    by_target: dict[str, list[Finding]] = {}
    for f in sorted(findings, key=lambda f: (-f.severity if f.severity != Severity.UNKNOWN else -2.5, f.id)):
        by_target.setdefault(f.target, []).append(f)
    for target, group in by_target.items():
        # Summaries carry client-chosen text (application_name): never read it as markup.
        t = Table(title=escape(target), title_justify="left", show_lines=False)
        t.add_column("severity")
        t.add_column("finding")
        t.add_column("summary / remedy")
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
    out.print(f"[bold {colour}]{verdict(status, findings, targets, scope)}[/bold {colour}]")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def render_prometheus(status: Severity, targets: Sequence[TargetStatus], findings: Sequence[Finding]) -> str:
    """Text exposition for node_exporter's textfile collector."""
    lines = [
        "# HELP toolkit_doctor_status Overall status (0 ok, 1 warning, 2 critical, 3 unknown).",
        "# TYPE toolkit_doctor_status gauge",
        f"toolkit_doctor_status {int(status)}",
        "# HELP toolkit_doctor_target_up Whether doctor could read the target.",
        "# TYPE toolkit_doctor_target_up gauge",
    ]
    lines += [
        f'toolkit_doctor_target_up{{kind="{t.kind}",address="{_label(t.address)}"}} {int(t.ok)}'
        for t in targets
    ]
    lines += [
        "# HELP toolkit_doctor_finding A finding (value: severity, 1 warning, 2 critical, 3 unknown).",
        "# TYPE toolkit_doctor_finding gauge",
    ]
    lines += [
        f'toolkit_doctor_finding{{id="{f.id}",target="{_label(f.target)}"}} {int(f.severity)}'
        for f in findings
    ]
    return "\n".join(lines) + "\n"


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

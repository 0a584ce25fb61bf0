"""Text from servers and clients reaches rich as text, never as markup.

application_name, query text, database, user and host names are chosen by whoever connects or
names things; "[/]" in one of them made rich raise MarkupError (a closing tag with nothing open),
and "[bold]" restyled the rest of the line. Each renderer must print them literally.
"""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from tests.unit import snapshots as s
from toolkit.cli import render_findings
from toolkit.cli.watch import pools_table
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.snapshot import TargetStatus

HOSTILE = ["[/]", "[bold]x[/bold]", "[red]", "\\[/]", "[link=http://x]y[/link]", "a[/b]c"]


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=400, color_system=None, markup=True), buf


@pytest.mark.parametrize("text", HOSTILE)
def test_findings_table_prints_server_text_literally(text: str) -> None:
    console, buf = _console()
    finding = Finding(
        "postgres.idle_in_transaction", Severity.CRITICAL, f"postgres@{text}", f"app {text}", {}, text
    )
    target = TargetStatus(text, text, f"host{text}", False, 0.1, f"cause {text}", "e")
    render_findings.render_table(Severity.CRITICAL, [target], [finding], console=console, scope=text)
    out = buf.getvalue()
    assert f"app {text}" in out and f"postgres@{text}" in out and f"cause {text}" in out


@pytest.mark.parametrize("text", HOSTILE)
def test_verdict_scope_from_a_database_name_is_literal(text: str) -> None:
    console, buf = _console()
    render_findings.render_table(Severity.OK, [], [], console=console, scope=f"read from database {text}")
    assert f"OK: no findings (read from database {text})" in buf.getvalue()


@pytest.mark.parametrize("text", HOSTILE)
def test_watch_prints_database_user_and_cause_literally(text: str) -> None:
    console, buf = _console()
    state = s.pgbouncer_state(address=f"h{text}", pools=(s.pool(database=f"db{text}", user=f"u{text}"),))
    down = TargetStatus("pgb2", "pgbouncer", f"down{text}", False, 0.1, f"refused {text}", "e")
    console.print(pools_table([down], [state]))
    out = buf.getvalue()
    assert f"db{text}/u{text}" in out and f"h{text}" in out and f"refused {text}" in out

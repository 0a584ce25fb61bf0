"""The runbook registry: every runbook a finding names exists, and every runbook has a docs page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.domain.checks import areas
from toolkit.domain.runbooks.base import RunbookUsageError
from toolkit.runbooks import MANUAL, find, infos, runbooks

DOCS = Path(__file__).resolve().parents[2] / "docs" / "runbooks"
EXPECTED = {
    "terminate-idle-transactions",
    "cancel-long-queries",
    "cache-flush-namespace",
    "pgbouncer-pause",
    "pgbouncer-resume",
    "pgbouncer-reload",
    "pgbouncer-reconnect",
    "pgbouncer-resize-pool",
    "pgbouncer-kill-database",
    "pgbouncer-disable",
    "pgbouncer-enable",
    "snapshot",
    "pgbouncer-raise-max-client-conn",
    "end-bypass-sessions",
    "redis-raise-maxclients",
    "redis-kill-idle-clients",
}


def test_every_runbook_of_the_issue_is_registered() -> None:
    assert set(runbooks()) == EXPECTED
    assert {i.name for i in MANUAL} == {"pgbouncer-unresponsive"}


def test_every_runbook_a_finding_names_exists() -> None:
    names = {i.name for i in infos()}
    named = {c.runbook for a in areas() for c in a.catalog if c.runbook}
    assert named <= names, named - names


def test_every_runbook_has_a_page() -> None:
    for info in infos():
        page = DOCS / f"{info.name}.md"
        assert page.is_file(), page
        text = page.read_text()
        for section in ("## Symptom", "## Finding", "## Run", "## Verify", "## Long-term fix"):
            assert section in text, (page.name, section)


def test_the_one_database_commands_confirm_by_typing_the_name() -> None:
    books = runbooks()
    for name in ("pgbouncer-kill-database", "pgbouncer-disable", "pgbouncer-enable"):
        assert books[name].INFO.confirm_database


def test_manual_and_unknown_runbooks_are_refused() -> None:
    with pytest.raises(RunbookUsageError, match="manual procedure"):
        find("pgbouncer-unresponsive")
    with pytest.raises(RunbookUsageError, match="unknown runbook 'nope'"):
        find("nope")


def test_the_findings_the_pgbouncer_runbooks_fix_exist() -> None:
    known = {c.id for a in areas() for c in a.catalog}
    for name, book in runbooks().items():
        if name.startswith("pgbouncer-") or name == "snapshot":
            assert set(book.INFO.fixes) <= known, (name, set(book.INFO.fixes) - known)


def test_every_finding_id_a_page_names_exists() -> None:
    known = {c.id for a in areas() for c in a.catalog}
    for page in DOCS.glob("*.md"):
        named = set(
            re.findall(
                r"`((?:pgbouncer|postgres|redis|cache|django|capacity|topology)\.[a-z_]+)`", page.read_text()
            )
        )
        assert named <= known, (page.name, named - known)

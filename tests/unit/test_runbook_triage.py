"""From a symptom to a runbook: the checks' catalogue is the one source of which runbook fixes which
finding; every runbook's ``fixes``, doctor's findings, checks.md and the triage map in
docs/runbooks/README.md agree with it, and name only findings and runbooks that exist."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from toolkit.domain import checks
from toolkit.domain.checks import catalog, run_checks
from toolkit.domain.checks.base import CheckInfo
from toolkit.domain.findings import Finding, Severity
from toolkit.runbooks import infos

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "docs" / "runbooks" / "README.md").read_text()
CHECKS_MD = (ROOT / "docs" / "checks.md").read_text()
ERRORS = (
    "query_wait_timeout",
    "no more connections allowed (max_client_conn)",
    "remaining connection slots are reserved",
    "sorry, too many clients already",
    'prepared statement "..." does not exist',
    'cursor "..." does not exist',
    "max number of clients reached",
)


def _triage_rows() -> list[list[str]]:
    section = README.split("## From an error to a runbook", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| ---")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", row)[1:-1]] for row in rows[1:]]


def test_every_runbook_fixes_exactly_what_the_catalogue_says() -> None:
    by_catalogue = {(fid, c.runbook) for fid, c in catalog().items() if c.runbook}
    by_runbooks = {(fid, info.name) for info in infos() for fid in info.fixes}
    assert by_runbooks - by_catalogue == set(), "a runbook claims a finding its catalogue entry does not name"
    assert by_catalogue - by_runbooks == set(), "a catalogue entry names a runbook that does not list it"


def test_the_catalogue_names_only_runbooks_that_exist() -> None:
    names = {i.name for i in infos()}
    assert {c.runbook for c in catalog().values() if c.runbook} <= names


def test_findings_carry_their_catalogue_runbook(monkeypatch: pytest.MonkeyPatch) -> None:
    area = SimpleNamespace(
        AREA="fake",
        CATALOG=(CheckInfo("fake.a", "a", "redis-raise-maxclients"), CheckInfo("fake.b", "b")),
        run=lambda snap: [
            Finding("fake.a", Severity.WARNING, "t", "s"),  # the check left it out
            Finding("fake.b", Severity.WARNING, "t", "s", runbook="cache-flush-namespace"),  # disagrees
        ],
    )
    monkeypatch.setattr(checks, "_MODULES", (area,))
    got = {f.id: f.runbook for f in run_checks(SimpleNamespace())}  # type: ignore[arg-type]
    assert got == {"fake.a": "redis-raise-maxclients", "fake.b": None}


def test_checks_md_names_the_catalogue_runbook_of_each_finding() -> None:
    for fid, info in catalog().items():
        section = CHECKS_MD.split(f"### `{fid}`", 1)[1].split("\n### ", 1)[0]
        line = re.search(r"- \*\*Runbook:\*\* (.*)", section)
        if line is None:  # an entry without the line (django.unreachable) names no runbook
            assert info.runbook is None, fid
            continue
        first = re.match(r"`([a-z0-9-]+)`", line.group(1))
        assert (first.group(1) if first else None) == info.runbook, (fid, line.group(1))


def test_the_triage_map_covers_each_error_users_report() -> None:
    rows = _triage_rows()
    for error in ERRORS:
        assert any(error in row[0] for row in rows), error
    assert len(rows) == len(ERRORS)


def test_the_triage_map_names_only_findings_and_runbooks_that_exist() -> None:
    known_ids, names = catalog(), {i.name for i in infos()}
    pages = {p.stem for p in (ROOT / "docs" / "runbooks").glob("*.md")}
    for error, source, findings, fix in _triage_rows():
        ids = re.findall(r"`([a-z_]+\.[a-z_]+)`", findings)
        assert ids, error
        assert set(ids) <= set(known_ids), (error, set(ids) - set(known_ids))
        for name, page in re.findall(r"\[([a-z-]+)\]\(([a-z-]+)\.md\)", fix):
            assert name == page and name in names and page in pages, (error, name)
        for anchor in re.findall(r"\(\.\./checks\.md#([a-z_]+)\)", fix):
            assert anchor in {i.replace(".", "") for i in known_ids}, (error, anchor)
        # A runbook the row's findings name in the catalogue is in the row.
        for fid in ids:
            runbook = known_ids[fid].runbook
            assert runbook is None or f"[{runbook}]" in fix, (error, fid, runbook)
        assert source, error

"""The async audit on its corpus: every marked line found, nothing else, precision and recall printed.

A positive file marks each blocking call with ``# expect: blocking CALL`` on its line (CALL is the
finding's ``evidence["call"]``). Negative files must give no finding at all.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolkit.domain.audit_async import FINDING_ID, analyse
from toolkit.domain.findings import Severity

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "async_corpus"
POSITIVE = sorted((CORPUS / "positive").glob("*.py"))
NEGATIVE = sorted((CORPUS / "negative").glob("*.py"))
MARK = re.compile(r"#\s*expect: blocking (\S+)")


def _expected(path: Path) -> set[tuple[int, str]]:
    lines = path.read_text().splitlines()
    return {(n, m.group(1)) for n, line in enumerate(lines, 1) if (m := MARK.search(line))}


def _found(path: Path) -> set[tuple[int, str]]:
    return {(f.evidence["line"], f.evidence["call"]) for f in analyse(path.read_text(), path.name)}


@pytest.mark.parametrize("path", POSITIVE, ids=lambda p: p.name)
def test_positive_file_gives_exactly_its_marked_calls(path: Path) -> None:
    assert _found(path) == _expected(path)


@pytest.mark.parametrize("path", NEGATIVE, ids=lambda p: p.name)
def test_negative_file_gives_nothing(path: Path) -> None:
    assert _found(path) == set()


def test_corpus_is_big_enough_and_scores_are_reported(capsys: pytest.CaptureFixture[str]) -> None:
    expected = {(p.name, *e) for p in POSITIVE for e in _expected(p)}
    found = {(p.name, *f) for p in POSITIVE + NEGATIVE for f in _found(p)}
    true_pos = len(expected & found)
    precision = true_pos / len(found) if found else 1.0
    recall = true_pos / len(expected)
    with capsys.disabled():
        print(
            f"\nasync audit corpus: {len(expected)} expected, {len(found)} found, "
            f"precision {precision:.3f}, recall {recall:.3f}"
        )
    assert len(expected) >= 25
    assert len(POSITIVE) >= 4 and len(NEGATIVE) >= 4
    assert precision == 1.0 and recall == 1.0


def test_a_finding_carries_id_target_evidence_and_remedy() -> None:
    src = "from shop.models import A\n\nasync def v(request):\n    return A.objects.count()\n"
    (finding,) = analyse(src, "app/views.py")
    assert finding.id == FINDING_ID == "async.blocking_call"
    assert finding.severity is Severity.WARNING
    assert finding.target == "app/views.py:4"
    assert finding.runbook is None
    assert dict(finding.evidence) == {
        "file": "app/views.py",
        "line": 4,
        "function": "v",
        "call": "QuerySet.count",
    }
    assert "acount" in finding.remedy


def test_a_call_inside_the_arguments_of_to_thread_still_blocks() -> None:
    src = "import asyncio, time\n\nasync def v():\n    await asyncio.to_thread(time.sleep(1))\n"
    assert [f.evidence["call"] for f in analyse(src, "x.py")] == ["time.sleep"]


def test_unparsable_source_raises_syntax_error() -> None:
    with pytest.raises(SyntaxError):
        analyse("async def (:\n", "broken.py")

"""Issue 11 §6: piped at 80 columns, the tables keep ids, runbook names and host names whole.

Each table the CLI prints (runbook list, a runbook's plan, doctor's findings and targets, plan) is
rendered 80 columns wide; every id, name, setting and host it holds must appear whole on one line, and
the prose columns wrap instead. ``audit async`` prints one line per finding unless asked for a table or
JSON. The runbook registry, the check catalogue and the inventory are real; doctor's findings and a
runbook plan are built here (rendering only).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from rich.console import Console

from toolkit.cli import render_findings
from toolkit.cli import runbook as runbook_cli
from toolkit.cli.app import main
from toolkit.domain.checks import areas
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.runbooks.base import Action, RunbookPlan
from toolkit.domain.snapshot import TargetStatus
from toolkit.runbooks import infos

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "tests" / "fixtures" / "inventories" / "small.yml"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(args))
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 1), out, err


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def whole_on_a_line(text: str, word: str) -> bool:
    """``word`` appears uncut on one line, not followed by more of an id (so a cut cannot pass)."""
    return any(re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w.-])", line) for line in text.splitlines())


def assert_fits(text: str) -> None:
    widths = [len(line) for line in text.splitlines()]
    assert max(widths) <= 80, f"a line of {max(widths)} columns"
    assert "…" not in text


def test_runbook_list_keeps_names_and_finding_ids_whole(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "runbook", "list")
    assert code == 0
    assert_fits(out)
    words = [i.name for i in infos()] + [f for i in infos() for f in i.fixes]
    assert words and "terminate-idle-transactions" in words
    assert [w for w in words if not whole_on_a_line(out, w)] == []


def test_the_plan_keeps_settings_and_hosts_whole(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "plan", "-i", str(SMALL))
    assert code == 0
    assert_fits(out)
    _, plan_json, _ = run(capsys, "plan", "-i", str(SMALL), "--format", "json")
    plan = json.loads(plan_json)
    settings = {name for p in plan["pgbouncer"].values() for name in p["settings"]}
    assert {"max_client_conn", "default_pool_size"} <= settings
    hosts = [*plan["pgbouncer"], *plan["redis"]]
    assert hosts
    for word in [*settings, *hosts, "superuser_reserved_connections", "maxmemory-policy"]:
        assert whole_on_a_line(out, word), word


def test_doctor_keeps_every_finding_id_and_target_whole() -> None:
    ids = sorted({c.id for a in areas() for c in a.catalog}, key=len)[-6:]  # the longest ids
    prose = "a long summary that has to wrap onto several lines of the prose column " * 2
    findings = [
        Finding(i, Severity.WARNING, "pgbouncer@198.18.0.11:6432", prose, remedy=prose, runbook="x")
        for i in ids
    ]
    targets = [TargetStatus("pgb1", "pgbouncer", "pgbouncer@198.18.0.11:6432", False, 3.0, "timed out " * 10)]
    buf = io.StringIO()
    render_findings.render_table(
        Severity.WARNING, targets, findings, console=Console(file=buf, width=80, color_system=None)
    )
    out = buf.getvalue()
    assert_fits(out)
    for word in [*ids, "pgbouncer@198.18.0.11:6432"]:
        assert whole_on_a_line(out, word), word


def test_a_runbook_plan_keeps_its_targets_whole() -> None:
    target = "pgbouncer@198.18.0.12:6432/pgbouncer-2"
    why = "the pool has waited longer than the threshold and every server connection is busy " * 2
    plan = RunbookPlan("pgbouncer-resize", (Action(target, "set", {"default_pool_size": 40}, why),))
    buf = io.StringIO()
    runbook_cli._plan_table(plan, Console(file=buf, width=80, color_system=None))
    out = buf.getvalue()
    assert_fits(out)
    assert whole_on_a_line(out, target)


@pytest.fixture
def blocking_project(tmp_path: Path) -> Path:
    (tmp_path / "views.py").write_text(
        "import time\n\nasync def v(request):\n    time.sleep(1)\n    Book.objects.get(pk=1)\n"
    )
    return tmp_path


def test_audit_async_prints_one_line_per_finding(
    capsys: pytest.CaptureFixture[str], blocking_project: Path
) -> None:
    code, out, err = run(capsys, "audit", "async", str(blocking_project))
    views = blocking_project / "views.py"
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{views}:4: async.blocking_call: async def v calls time.sleep, which blocks the event loop; "
        "use await asyncio.sleep(...)",
        f"{views}:5: async.blocking_call: async def v calls QuerySet.get, which blocks the event loop; "
        "use the async variant: await queryset.aget(...) (or sync_to_async)",
        "WARNING: 2 warnings (static analysis)",
    ]


def test_audit_async_table_and_json_on_request(
    capsys: pytest.CaptureFixture[str], blocking_project: Path
) -> None:
    code, out, _ = run(capsys, "audit", "async", str(blocking_project), "--format", "table")
    assert code == 1 and "┃ finding" in out and whole_on_a_line(out, "async.blocking_call")
    assert_fits(out)
    code, out, _ = run(capsys, "audit", "async", str(blocking_project), "--format", "json")
    doc = json.loads(out)
    assert code == 1 and [f["evidence"]["line"] for f in doc["findings"]] == [4, 5]
    assert all("...." not in f["remedy"] for f in doc["findings"])

"""Every doctor finding that a runbook fixes names it, in each output format (issue 11 §5).

The world is test_doctor_cli's (fake gathering, real inventory, plan, checks and renderers), with a
Redis that refused connections and runs below the plan's maxclients, and a session idle in a
transaction: three findings, three runbooks.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest

from tests.cli.test_doctor_cli import IDLE_120, World, _families, doctor
from toolkit import gather
from toolkit.domain.snapshot import RedisState

EXPECTED = {
    "postgres.idle_in_transaction": "terminate-idle-transactions",
    "redis.maxclients_below_demand": "redis-raise-maxclients",
    "redis.rejected_connections": "redis-kill-idle-clients",
}


class LeakyRedis(World):
    """test_doctor_cli's world, with Redis at maxclients 1 and 7 connections refused."""

    def read_all(self, *args: Any, **kwargs: Any) -> tuple[list[Any], list[Any]]:
        statuses, states = super().read_all(*args, **kwargs)
        leaky = [
            replace(
                st,
                info={**st.info, "rejected_connections": 7},
                config={**st.config, "maxclients": "1"},
            )
            if isinstance(st, RedisState)
            else st
            for st in states
        ]
        return statuses, leaky


@pytest.fixture
def leaky(monkeypatch: pytest.MonkeyPatch) -> LeakyRedis:
    for name in ("SECRETS_DIR", "PGBOUNCER_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        monkeypatch.delenv(f"TOOLKIT_{name}", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    w = LeakyRedis(backends=(IDLE_120,))
    monkeypatch.setattr(gather, "read_all", w.read_all)
    return w


def test_json_names_the_runbook_of_each_finding(
    capsys: pytest.CaptureFixture[str], leaky: LeakyRedis
) -> None:
    code, out, _ = doctor(capsys, "--format", "json")
    assert code == 2
    found = {f["id"]: f["runbook"] for f in json.loads(out)["findings"]}
    assert {k: found.get(k) for k in EXPECTED} == EXPECTED


def test_table_names_the_runbook_under_each_finding(
    capsys: pytest.CaptureFixture[str], leaky: LeakyRedis
) -> None:
    code, out, _ = doctor(capsys)
    assert code == 2
    for fid, runbook in EXPECTED.items():
        # The finding's row, then its summary, remedy and "runbook: NAME" lines in the same cell.
        row = out[out.index(fid) :]
        ends = [row.find(other, 1) for other in EXPECTED if other != fid]
        cell = row[: min([e for e in ends if e > 0], default=len(row))]
        assert f"runbook: {runbook}" in cell, (fid, out)


def test_markdown_has_a_runbook_column(capsys: pytest.CaptureFixture[str], leaky: LeakyRedis) -> None:
    code, out, _ = doctor(capsys, "--format", "markdown")
    assert code == 2
    header = next(line for line in out.splitlines() if line.startswith("| severity |"))
    cells = [c.strip() for c in header.strip("|").split("|")]
    col = cells.index("runbook")
    rows = {}
    for line in out.splitlines():
        m = re.match(r"\| \w+ \| `([a-z_.]+)` \|", line)
        if m:
            rows[m.group(1)] = [c.strip() for c in line.strip().strip("|").split(" | ")][col]
    assert {k: rows.get(k) for k in EXPECTED} == EXPECTED


def test_prometheus_has_a_runbook_info_series(capsys: pytest.CaptureFixture[str], leaky: LeakyRedis) -> None:
    code, out, _ = doctor(capsys, "--format", "prometheus")
    assert code == 2
    got = _families(out)  # also: no series repeats
    for fid, runbook in EXPECTED.items():
        assert got[("toolkit_doctor_finding_runbook", (("id", fid), ("runbook", runbook)))] == 1
    # The finding series keep their labels (id, target): alerts written against them still match.
    labels = {dict(k[1]).keys().__len__() for k in got if k[0] == "toolkit_doctor_finding"}
    assert labels == {2}


def test_a_finding_without_a_runbook_has_no_info_series(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    w = World(pgbouncer_version="PgBouncer 1.16.1")  # pgbouncer.version_outdated: no runbook
    monkeypatch.setattr(gather, "read_all", w.read_all)
    code, out, _ = doctor(capsys, "--format", "prometheus")
    assert code == 1
    got = _families(out)
    assert any(k[0] == "toolkit_doctor_finding" and ("id", "pgbouncer.version_outdated") in k[1] for k in got)
    assert not [k for k in got if k[0] == "toolkit_doctor_finding_runbook"]


def test_runbook_names_stay_whole_at_80_columns(
    capsys: pytest.CaptureFixture[str], leaky: LeakyRedis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = doctor(capsys)
    assert code == 2
    assert max(len(line) for line in out.splitlines()) <= 80
    for runbook in EXPECTED.values():
        assert re.search(rf"[│ ]{re.escape(runbook)}[│ ]", out), (runbook, out)

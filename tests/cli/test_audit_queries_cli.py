"""``toolkit audit queries`` with a fake pg_stat_statements reader: exit codes, JSON, table, one-line errors.

The inventory is real (tests/fixtures/inventories/small.yml, through ansible-inventory), and so are
the SQL parser, the ranking and the renderers. Only ``read_statements`` is replaced: it records what
it was asked and returns hand-built rows (or raises what the adapter raises).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from toolkit.adapters import sql_shape, statements
from toolkit.adapters.errors import TargetError
from toolkit.cli.app import main
from toolkit.domain.audit_queries import Statement

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "tests" / "fixtures" / "inventories" / "small.yml")
SECRET = "m0nitor-s3cret"
WIDE = (
    'SELECT * FROM "shop_order" INNER JOIN "shop_customer" ON ("shop_order"."customer_id" = '
    '"shop_customer"."id") INNER JOIN "shop_product" ON ("shop_order"."product_id" = "shop_product"."id")'
)
KEYED = 'SELECT "shop_order"."id" FROM "shop_order" WHERE "shop_order"."id" = $1 LIMIT $2'
LIST = 'SELECT "shop_order"."id", "shop_order"."total" FROM "shop_order" ORDER BY "shop_order"."id"'


def _stmt(queryid: int, text: str, calls: int, rows: int, total_ms: float) -> Statement:
    return Statement(
        queryid, calls, rows, total_ms, total_ms / calls, text, "app", "app", sql_shape.shape(text)
    )


@dataclass
class Fake:
    """What the fake reader returns, and what it was asked."""

    rows: list[Statement] = field(default_factory=list)
    hidden: int = 0
    error: Exception | None = None
    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(
        self, target: statements.StatementsTarget, timeout: float, min_calls: int, min_rpc: float
    ) -> statements.StatementsRead:
        self.calls.append({"target": target, "timeout": timeout, "min_calls": min_calls, "min_rpc": min_rpc})
        if self.error:
            raise self.error
        return statements.StatementsRead("app", tuple(self.rows), self.hidden, self.hidden == 0, 57)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Fake:
    f = Fake(
        rows=[
            _stmt(11, WIDE, 20, 20 * 800, 300.0),
            _stmt(12, KEYED, 5000, 5000, 900.0),
            _stmt(13, LIST, 40, 40 * 2500, 1200.0),
        ]
    )
    monkeypatch.setattr(statements, "read_statements", f)
    monkeypatch.delenv("TOOLKIT_POSTGRES_PASSWORD", raising=False)
    monkeypatch.delenv("TOOLKIT_SECRETS_DIR", raising=False)
    return f


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(["audit", "queries", *args])
    out, err = capsys.readouterr()
    return int(exc.value.code or 0), out, err


def test_json_ranks_by_total_time_and_exits_1(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(capsys, "-i", SMALL, "--format", "json")
    assert code == 1 and err == ""
    doc = json.loads(out)
    assert doc["schema"] == "toolkit.audit/v1" and doc["status"] == "warning"
    assert set(doc) == {"schema", "status", "source", "findings"}
    assert doc["source"]["database"] == "app" and doc["source"]["statements_read"] == 3
    assert doc["source"]["hidden"] == 0 and doc["source"]["note"] is None
    assert [f["evidence"]["queryid"] for f in doc["findings"]] == [13, 11]
    first = doc["findings"][0]
    assert set(first) == {"id", "severity", "target", "summary", "evidence", "remedy", "runbook"}
    assert first["id"] == "orm.overfetching_query" and first["target"] == "postgres@127.0.0.1:5432/app"
    assert first["evidence"]["reasons"][0] == "A: 2500 rows per call (>= 1000)"
    wide = doc["findings"][1]["evidence"]
    assert (wide["joins"], wide["columns"], wide["rows_per_call"]) == (2, "*", 800.0)


def test_top_and_min_calls(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "-i", SMALL, "-f", "json", "--top", "1", "--min-calls", "30")
    assert code == 1
    assert [f["evidence"]["queryid"] for f in json.loads(out)["findings"]] == [13]
    assert fake.calls[0]["min_calls"] == 30 and fake.calls[0]["min_rpc"] == 10


def test_nothing_over_fetches_exits_0(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    fake.rows = [fake.rows[1]]
    code, out, err = _run(capsys, "-i", SMALL)
    assert code == 0 and err == ""
    assert "OK: no findings (1 statement(s) read from pg_stat_statements in database app)" in out


def test_statements_the_parser_cannot_read_are_counted(
    fake: Fake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    fake.rows = [_stmt(21, "SELECT FROM WHERE (((", 50, 50_000, 10.0), _stmt(22, "SET x = $1", 50, 500, 1.0)]
    code, out, _ = _run(capsys, "-i", SMALL)
    assert code == 0
    assert "(2 statement(s) read from pg_stat_statements in database app, 1 not parsed)" in out
    _, out, _ = _run(capsys, "-i", SMALL, "-f", "json")
    assert json.loads(out)["source"]["unparsed"] == 1


def test_table_names_statement_and_remedy(
    fake: Fake, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per cell: the text can be searched whole
    code, out, _ = _run(capsys, "-i", SMALL)
    flat = " ".join(out.split())
    assert code == 1
    assert "#1 queryid 13: 2500 rows/call x 40 calls, 0 joins, 2 columns" in flat
    assert "scope select_related" in flat and "WARNING: 2 warnings" in flat


def test_hidden_statements_are_said_and_unknown(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    fake.hidden = 4
    code, out, err = _run(capsys, "-i", SMALL, "-f", "json")
    assert code == 3
    assert err == (
        "toolkit: audit queries: postgres@127.0.0.1:5432: 4 statement(s) above the thresholds are hidden "
        "from toolkit_monitor, which may not read other roles' statement text; GRANT pg_read_all_stats "
        "(or pg_monitor) TO toolkit_monitor\n"
    )
    doc = json.loads(out)
    assert doc["status"] == "unknown" and doc["source"]["hidden"] == 4 and "GRANT" in doc["source"]["note"]
    assert len(doc["findings"]) == 2


def test_databases_tried_and_the_password_never_shown(
    fake: Fake, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "monitor_password").write_text(SECRET + "\n")
    code, out, err = _run(capsys, "-i", SMALL, "--secrets", str(tmp_path), "-f", "json")
    target = fake.calls[0]["target"]
    assert code == 1 and SECRET not in out + err and SECRET not in repr(target)
    assert target.password == SECRET and target.user == "toolkit_monitor"
    assert target.dbnames == ("postgres", "app")
    _run(capsys, "-i", SMALL, "--dbname", "shop", "--timeout", "1.5")
    assert fake.calls[1]["target"].dbnames == ("shop",) and fake.calls[1]["timeout"] == 1.5


def test_unreadable_server_is_one_line_and_exit_3(fake: Fake, capsys: pytest.CaptureFixture[str]) -> None:
    fake.error = TargetError(
        "postgres@127.0.0.1:5432", "looking for pg_stat_statements", "the extension is missing", "install it"
    )
    code, out, err = _run(capsys, "-i", SMALL)
    assert (code, out) == (3, "")
    assert err == (
        "toolkit: postgres@127.0.0.1:5432: the extension is missing during looking for "
        "pg_stat_statements; install it\n"
    )


SECONDS = "toolkit: Invalid value for '--timeout': must be a number of seconds above 0 and at most 3600"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--top", "0"], "toolkit: Invalid value for '--top': must be a whole number from 1 to 10000"),
        (["--top", "1" * 5000], "toolkit: Invalid value for '--top': must be a whole number from 1 to 10000"),
        (["--top", "\u0665"], "toolkit: Invalid value for '--top': must be a whole number from 1 to 10000"),
        (["--min-calls", "0"], "toolkit: Invalid value for '--min-calls': must be a whole number from 1 to"),
        (
            ["--timeout", "0"],
            SECONDS,
        ),
        (
            ["--timeout", "nan"],
            SECONDS,
        ),
        (
            ["--timeout", "inf"],
            SECONDS,
        ),
        (
            ["--timeout", "1e400"],
            SECONDS,
        ),
        (
            ["--format", "xml"],
            "toolkit: Invalid value for '--format' / '-f': Value error, 'xml' is not one of 'table', 'json'",
        ),
    ],
)
def test_usage_errors_exit_64(
    fake: Fake, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = _run(capsys, "-i", SMALL, *args)
    assert (code, out) == (64, "")
    assert err.startswith(message) and len(err.splitlines()) == 1
    assert fake.calls == []


def test_missing_inventory_exits_65(fake: Fake, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = _run(capsys, "-i", str(tmp_path / "nope"))
    assert code == 65 and len(err.splitlines()) == 1 and "no such file or directory" in err
    assert fake.calls == []

"""``toolkit doctor`` with fake gathering: exit codes, the four formats, --only, usage errors, secrets.

The inventory is real (tests/fixtures/inventories/small.yml, read through ansible-inventory), and
so are the plan, the checks and the renderers. Only ``toolkit.gather.read_all`` is replaced: it
returns hand-built target statuses and states for the inventory's three targets (pgb1, PostgreSQL,
cache1, all on 127.0.0.1).
"""

from __future__ import annotations

import functools
import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.cli.streams import without_inventory_line
from tests.unit import snapshots as s
from toolkit import gather
from toolkit.adapters import inventory
from toolkit.adapters.secrets import Secrets
from toolkit.cli import render_findings
from toolkit.cli.app import main
from toolkit.domain.findings import Finding, Severity
from toolkit.domain.inventory import topology_from_inventory
from toolkit.domain.sizing import plan
from toolkit.domain.snapshot import TargetStatus
from toolkit.domain.targets import Endpoint

ROOT = Path(__file__).resolve().parents[2]
SMALL = str(ROOT / "tests" / "fixtures" / "inventories" / "small.yml")
SCHEMA = json.loads((ROOT / "docs" / "schema" / "doctor-v1.json").read_text())
SECRET = "s3cret-value"
PGB, PG, REDIS = "127.0.0.1:6432", "127.0.0.1:5432", "127.0.0.1:6379"


@functools.cache
def _planned_config() -> dict[str, str]:
    """pgb1's planned settings, from the fixture inventory's own plan."""
    data = inventory.load(SMALL)
    mine = plan(topology_from_inventory(data.groups, data.hostvars)).pgbouncer[0]
    return {**{k: str(v.value) for k, v in mine.settings}, "pool_mode": mine.pool_mode}


def _ok(name: str, kind: str, address: str) -> TargetStatus:
    return TargetStatus(name, kind, address, True, 0.02)


def _down(name: str, kind: str, address: str, cause: str = "connection refused") -> TargetStatus:
    error = f"{kind}@{address}: {cause} during connect; is the service running and listening there?"
    return TargetStatus(name, kind, address, False, 0.01, cause, error)


@dataclass
class World:
    """What the fake read_all returns; each test changes what it is about."""

    pgbouncer_version: str = "PgBouncer 1.26.1"
    backends: tuple[s.Backend, ...] = ()
    pgbouncer_up: bool = True
    redis_up: bool = True
    pgbouncer_cause: str = "connection refused"
    pgbouncer_error: str | None = None  # the one-line message, unless given
    calls: list[tuple[Sequence[Endpoint], Secrets, float]] = field(default_factory=list)

    def read_all(
        self, endpoints: Sequence[Endpoint], secrets: Secrets, timeout: float, processes: Any = None
    ) -> tuple[list[TargetStatus], list[Any]]:
        self.calls.append((endpoints, secrets, timeout))
        pgb = _down("pgb1", "pgbouncer", PGB, self.pgbouncer_cause)
        if self.pgbouncer_error is not None:
            pgb = replace(pgb, error=self.pgbouncer_error)
        statuses = [
            _ok("pgb1", "pgbouncer", PGB) if self.pgbouncer_up else pgb,
            _ok("postgres", "postgres", PG),
            _ok("cache1", "redis", REDIS) if self.redis_up else _down("cache1", "redis", REDIS),
        ]
        states: list[Any] = [replace(s.postgres_state(self.backends), address=PG)]
        if self.pgbouncer_up:
            # Every backend is a PgBouncer server linked to a client of app node web1 (whose
            # address is its name: the inventory sets no ansible_host).
            servers = tuple(
                s.conn("S", ptr=f"0xs{b.pid}", link=f"0xc{b.pid}", remote_pid=b.pid) for b in self.backends
            )
            clients = tuple(s.conn(ptr=f"0xc{b.pid}", link=f"0xs{b.pid}", addr="web1") for b in self.backends)
            states.append(
                s.pgbouncer_state(
                    address=PGB,
                    version=self.pgbouncer_version,
                    config=_planned_config(),
                    clients=clients,
                    servers=servers,
                )
            )
        if self.redis_up:
            states.append(s.redis_state("cache1", address=REDIS))
        return statuses, states


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    for name in ("SECRETS_DIR", "PGBOUNCER_PASSWORD", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
        monkeypatch.delenv(f"TOOLKIT_{name}", raising=False)
    monkeypatch.setenv("COLUMNS", "250")  # the table's summaries on one line each
    w = World()
    monkeypatch.setattr(gather, "read_all", w.read_all)
    return w


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", SMALL, *args])
    out, err = capsys.readouterr()
    code = done.value.code
    assert isinstance(code, int), code
    return code, out, without_inventory_line(err)


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = doctor(capsys, "--format", "json", *args)
    assert err == ""
    data = json.loads(out)
    jsonschema.validate(data, SCHEMA, cls=jsonschema.Draft202012Validator)
    return code, data


IDLE_120 = s.backend(4242, state="idle in transaction", state_age=120.0, xact_age=121.0)


def _setup(w: World, scenario: str) -> None:
    if scenario in ("warning", "critical"):
        w.pgbouncer_version = "PgBouncer 1.16.1"
    if scenario in ("critical", "critical and unknown"):
        w.backends = (IDLE_120,)
    if scenario in ("unknown", "critical and unknown"):
        w.redis_up = False


@pytest.mark.parametrize(
    ("scenario", "code", "status", "ids"),
    [
        ("healthy", 0, "ok", []),
        ("warning", 1, "warning", ["pgbouncer.version_outdated"]),
        ("critical", 2, "critical", ["pgbouncer.version_outdated", "postgres.idle_in_transaction"]),
        ("unknown", 3, "unknown", ["redis.unreachable"]),
        ("critical and unknown", 2, "critical", ["postgres.idle_in_transaction", "redis.unreachable"]),
    ],
)
def test_exit_code_is_the_worst_finding(
    capsys: pytest.CaptureFixture[str], world: World, scenario: str, code: int, status: str, ids: list[str]
) -> None:
    _setup(world, scenario)
    got, data = _json(capsys)
    assert (got, data["status"]) == (code, status)
    assert sorted(f["id"] for f in data["findings"]) == ids
    table_code, _, _ = doctor(capsys)
    assert table_code == code


def test_json_is_the_documented_document(capsys: pytest.CaptureFixture[str], world: World) -> None:
    _setup(world, "critical")
    _, data = _json(capsys, "--timeout", "1.5")
    assert data["schema"] == "toolkit.doctor/v1"
    assert data["targets"] == [
        {"name": "pgb1", "kind": "pgbouncer", "address": PGB, "ok": True, "elapsed_s": 0.02}
        | {"cause": None, "error": None},
        {"name": "postgres", "kind": "postgres", "address": PG, "ok": True, "elapsed_s": 0.02}
        | {"cause": None, "error": None},
        {"name": "cache1", "kind": "redis", "address": REDIS, "ok": True, "elapsed_s": 0.02}
        | {"cause": None, "error": None},
    ]
    idle = next(f for f in data["findings"] if f["id"] == "postgres.idle_in_transaction")
    assert idle["severity"] == "critical"
    assert idle["target"] == f"postgres@{PG}"
    assert idle["summary"] == "pid 4242 app@app: idle in transaction for 120 s held by app node web1"
    assert idle["evidence"]["app_node"] == "web1"
    assert idle["evidence"]["age_s"] == 120.0
    assert idle["runbook"] == "terminate-idle-transactions"


def test_gathering_gets_the_inventorys_targets_and_the_timeout(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    doctor(capsys, "--timeout", "1.5")
    [(endpoints, _, timeout)] = world.calls
    assert timeout == 1.5
    assert [(e.kind, e.name, f"{e.address}:{e.port}") for e in endpoints] == [
        ("pgbouncer", "pgb1", PGB),
        ("postgres", "postgres", PG),
        ("redis", "cache1", REDIS),
    ]


def test_table_shows_the_same_findings_as_json(capsys: pytest.CaptureFixture[str], world: World) -> None:
    _setup(world, "critical and unknown")
    world.pgbouncer_version = "PgBouncer 1.16.1"
    _, data = _json(capsys)
    code, out, err = doctor(capsys)
    assert (code, err) == (2, "")
    assert len(data["findings"]) == 3
    for f in data["findings"]:
        assert f["id"] in out
        assert f"{f['target']}" in out
        assert f["summary"] in out
        assert f["remedy"] in out
        assert f"runbook: {f['runbook']}" in out if f["runbook"] else True
    for t in data["targets"]:
        assert t["address"] in out
    assert out.rstrip().splitlines()[-1] == "CRITICAL: 1 critical, 1 unknown, 1 warning (2/3 targets read)"


def test_healthy_table_says_so(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, out, _ = doctor(capsys)
    assert code == 0
    assert out.rstrip().splitlines()[-1] == "OK: no findings (3/3 targets read)"


def _families(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample by (name, labels), parsed as node_exporter's textfile collector would; no duplicate."""
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def test_prometheus_output(capsys: pytest.CaptureFixture[str], world: World) -> None:
    _setup(world, "critical and unknown")
    code, out, err = doctor(capsys, "--format", "prometheus")
    assert (code, err) == (2, "")
    got = _families(out)
    assert got[("toolkit_doctor_status", ())] == 2
    assert got[("toolkit_doctor_target_up", (("address", PGB), ("kind", "pgbouncer"), ("name", "pgb1")))] == 1
    assert got[("toolkit_doctor_target_up", (("address", REDIS), ("kind", "redis"), ("name", "cache1")))] == 0
    idle = (("id", "postgres.idle_in_transaction"), ("target", f"postgres@{PG}"))
    assert got[("toolkit_doctor_finding", idle)] == 2
    assert got[("toolkit_doctor_finding_count", idle)] == 1
    unreachable = (("id", "redis.unreachable"), ("target", f"redis@{REDIS}"))
    assert got[("toolkit_doctor_finding", unreachable)] == 3
    assert "# TYPE toolkit_doctor_status gauge" in out.splitlines()
    assert out.endswith("\n")


def test_two_idle_sessions_on_one_database_are_one_series_with_a_count(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    # The fault node_exporter rejected: two findings with one id and one target were two samples
    # with the same name and labels.
    world.backends = (IDLE_120, s.backend(4343, state="idle in transaction", state_age=90.0, xact_age=91.0))
    code, out, _ = doctor(capsys, "--format", "prometheus")
    assert code == 2
    got = _families(out)  # asserts that no series repeats
    idle = (("id", "postgres.idle_in_transaction"), ("target", f"postgres@{PG}"))
    assert (got[("toolkit_doctor_finding", idle)], got[("toolkit_doctor_finding_count", idle)]) == (2, 2)


def test_label_values_with_quotes_backslashes_and_newlines_round_trip() -> None:
    target = 'django:a"b\\c\nd:{x="1"} 2'
    finding = Finding("cache.nodes_disagree", Severity.WARNING, target, "s", {}, "r")
    status = TargetStatus("n", "django", 'addr"\n', True, 0.0)
    got = _families(render_findings.render_prometheus(Severity.WARNING, [status], [finding, finding]))
    assert got[("toolkit_doctor_finding_count", (("id", finding.id), ("target", target)))] == 2
    assert got[("toolkit_doctor_target_up", (("address", 'addr"\n'), ("kind", "django"), ("name", "n")))] == 1


def test_output_writes_the_file_atomically_with_mode_0644(
    capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path
) -> None:
    _setup(world, "critical")
    target = tmp_path / "toolkit.prom"
    target.write_text("old\n")
    target.chmod(0o600)
    code, out, err = doctor(capsys, "--format", "prometheus", "--output", str(target))
    assert (code, out, err) == (2, "", "")
    assert _families(target.read_text())[("toolkit_doctor_status", ())] == 2
    assert target.stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toolkit.prom"]  # no temporary file left


@pytest.mark.parametrize("kind", ["fifo", "directory", "symlink", "missing dir"])
def test_output_refuses_what_is_not_a_regular_file(
    capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "out"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "symlink":
        (tmp_path / "real").write_text("keep\n")
        path.symlink_to(tmp_path / "real")
    else:
        path = tmp_path / "nope" / "out"
    code, out, err = doctor(capsys, "--format", "json", "--output", str(path))
    assert (code, out) == (64, "")
    assert err.count("\n") == 1 and str(path) in err
    if kind == "symlink":
        assert (tmp_path / "real").read_text() == "keep\n"
    if kind == "fifo":
        assert stat.S_ISFIFO(path.stat().st_mode)


def test_output_needs_a_file_format(capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path) -> None:
    code, _, err = doctor(capsys, "--output", str(tmp_path / "x"))
    assert code == 64 and "needs --format json, prometheus or markdown" in err
    assert world.calls == []


def test_markdown_output(capsys: pytest.CaptureFixture[str], world: World) -> None:
    _setup(world, "critical")
    code, out, err = doctor(capsys, "--format", "markdown")
    assert (code, err) == (2, "")
    lines = out.splitlines()
    assert lines[0] == "## toolkit doctor: CRITICAL: 1 critical, 1 warning (3/3 targets read)"
    assert "| target | kind | read | time |" in lines
    assert f"| {PGB} | pgbouncer | ok | 0.02 s |" in lines
    assert "| severity | finding | target | summary | remedy | runbook |" in lines
    rows = [ln for ln in lines if ln.startswith(("| warning", "| critical"))]
    assert len(rows) == 2
    idle = next(r for r in rows if "postgres.idle_in_transaction" in r)
    assert idle.startswith(
        f"| critical | `postgres.idle_in_transaction` | postgres@{PG} | "
        "pid 4242 app@app: idle in transaction for 120 s held by app node web1 | "
    )
    assert idle.endswith(" | terminate-idle-transactions |")
    assert all(r.count(" | ") == 5 for r in rows)


def test_only_filters_findings_and_the_exit_code(capsys: pytest.CaptureFixture[str], world: World) -> None:
    _setup(world, "critical and unknown")
    world.pgbouncer_version = "PgBouncer 1.16.1"
    code, data = _json(capsys, "--only", "pgbouncer")
    assert code == 1
    assert [f["id"] for f in data["findings"]] == ["pgbouncer.version_outdated"]
    assert len(data["targets"]) == 3  # targets are still all reported


def test_only_an_exact_id(capsys: pytest.CaptureFixture[str], world: World) -> None:
    _setup(world, "critical and unknown")
    code, data = _json(capsys, "--only", "redis.unreachable")
    assert code == 3
    assert [f["id"] for f in data["findings"]] == ["redis.unreachable"]


def test_only_an_unknown_prefix_exits_64(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, out, err = doctor(capsys, "--only", "nosuch")
    assert (code, out) == (64, "")
    assert "no finding id starts with 'nosuch'; see docs/checks.md" in err
    assert "Traceback" not in err
    assert world.calls == []


def test_only_an_unknown_prefix_is_reported_in_one_line(
    capsys: pytest.CaptureFixture[str], world: World
) -> None:
    _, _, err = doctor(capsys, "--only", "nosuch")
    assert err.count("\n") == 1
    assert "no finding id starts with 'nosuch'" in err


@pytest.mark.parametrize(
    "value",
    [
        "0",
        "-1",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "1e400",
        "1e3",
        "3601",
        "1" * 5000,
        "\u0663",
        "\uff13",
        "1_0",
        " 3",
        "",
    ],
)
def test_timeout_must_be_a_plain_positive_number(
    capsys: pytest.CaptureFixture[str], world: World, value: str
) -> None:
    code, out, err = doctor(capsys, "--timeout", value)
    assert (code, out) == (64, "")
    assert err.startswith(
        "toolkit: Invalid value for '--timeout': must be a number of seconds above 0 and at most 3600, "
        "written with ASCII digits"
    )
    assert err.count("\n") == 1
    assert world.calls == []


def test_an_unknown_format_exits_64(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, out, err = doctor(capsys, "--format", "yaml")
    assert (code, out) == (64, "")
    assert "'yaml' is not one of 'table', 'json', 'prometheus', 'markdown'" in err
    assert world.calls == []


def test_offline_never_gathers(capsys: pytest.CaptureFixture[str], world: World) -> None:
    code, data = _json(capsys, "--offline")
    assert (code, data["status"], data["targets"], data["findings"]) == (0, "ok", [], [])
    code, out, _ = doctor(capsys, "--offline")
    assert code == 0
    assert out.rstrip().splitlines()[-1] == "OK: no findings (offline)"
    assert world.calls == []


@pytest.mark.parametrize("fmt", ["table", "json", "prometheus", "markdown"])
def test_no_password_in_any_format(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, world: World, fmt: str
) -> None:
    monkeypatch.setenv("TOOLKIT_PGBOUNCER_PASSWORD", SECRET)
    world.pgbouncer_up = False
    world.pgbouncer_cause = "authentication failed"
    world.backends = (IDLE_120,)
    code, out, err = doctor(capsys, "--format", fmt)
    assert code == 2
    [(_, secrets, _)] = world.calls
    assert secrets.password("pgbouncer") == SECRET  # gathering had it, to connect with
    if fmt != "prometheus":  # which carries no summaries
        assert "authentication failed" in out
    assert SECRET not in out
    assert SECRET not in err


def test_no_password_with_debug(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, world: World
) -> None:
    monkeypatch.setenv("TOOLKIT_PGBOUNCER_PASSWORD", SECRET)
    with pytest.raises(SystemExit):
        main(["--debug", "doctor", "-i", SMALL, "--format", "json"])
    out, err = capsys.readouterr()
    assert SECRET not in out + err


def test_markdown_keeps_each_finding_on_one_row(capsys: pytest.CaptureFixture[str], world: World) -> None:
    world.pgbouncer_up = False
    world.pgbouncer_error = "pgbouncer@127.0.0.1:6432: OSError: first line\nsecond line"
    code, out, _ = doctor(capsys, "--format", "markdown")
    assert code == 3
    rows = [ln for ln in out.splitlines() if ln.startswith("| unknown")]
    assert len(rows) == 1
    assert rows[0].endswith(" | pgbouncer-unresponsive |")


def _inventory_with(tmp_path: Path, line: str) -> str:
    text = Path(SMALL).read_text().replace("        pgb1:\n", f"        pgb1:\n          {line}\n")
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return str(path)


def test_an_acknowledged_cve_drops_out(
    capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path
) -> None:
    world.pgbouncer_version = "PgBouncer 1.26.0"  # only CVE-2026-107348..107350 open
    inv = _inventory_with(tmp_path, "toolkit_acknowledged_cves: [CVE-2026-107350]")
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", inv, "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert done.value.code == 1
    (f,) = data["findings"]
    assert f["severity"] == "warning" and sorted(f["evidence"]["cves"]) == [
        "CVE-2026-107348",
        "CVE-2026-107349",
    ]


@pytest.mark.parametrize(
    "line", ["toolkit_acknowledged_cves: CVE-2026-107350", "toolkit_acknowledged_cves: ['CVE-2026-1 ; x']"]
)
def test_a_malformed_acknowledgement_is_65_before_any_read(
    capsys: pytest.CaptureFixture[str], world: World, tmp_path: Path, line: str
) -> None:
    with pytest.raises(SystemExit) as done:
        main(["doctor", "-i", _inventory_with(tmp_path, line), "--offline"])
    err = without_inventory_line(capsys.readouterr().err)
    assert done.value.code == 65 and world.calls == []
    assert (
        err.startswith("toolkit: inventory: toolkit_acknowledged_cves (host pgb1): ") and err.count("\n") == 1
    )

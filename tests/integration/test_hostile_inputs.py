"""Hostile role inputs fail the lab playbook at its first play, before any file on any host changes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.conftest import ROOT, SECRETS, address, ansible_playbook, fleet_files

pytestmark = pytest.mark.integration

# Every file the lab's roles write on the hosts: configs, the auth_file, ACL file, the systemd units and
# drop-ins, the demo's config and launcher. Read on every host over SSH, before and after.
WATCHED_GLOBS = [
    "/etc/pgbouncer/*",
    "/etc/default/pgbouncer*",
    "/etc/redis/*",
    "/etc/postgresql/17/main/*.conf",
    "/etc/postgresql/17/main/conf.d/*",
    "/opt/toolkit-demo/etc/*",
    "/opt/toolkit-demo/bin/*",
    "/etc/systemd/system/pgbouncer*.service",
    "/etc/systemd/system/redis*.service",
    "/etc/systemd/system/redis-server.service.d/*",
    "/etc/systemd/system/postgresql@17-main.service.d/*",
    "/etc/systemd/system/toolkit-demo*.service",
]
CANARY = "Canary-secret-0123456789"

# (variable, value, the host the check names first is any of the lab's): at least one per role.
HOSTILE: list[tuple[str, Any, str]] = [
    ("pgbouncer_server_reset_query", "DISCARD ALL\nauth_type = trust", "control character U+000A"),
    ("pgbouncer_listen_addr", f"{address('pgb1')},*", "has the wildcard '*'"),
    ("pgbouncer_listen_port", "\u0663", "must be an integer from 1 to 65535"),
    ("redis_app_command_rules", "+@read\nuser evil on nopass ~* +@all", "control character U+000A"),
    ("redis_maxmemory_policy", "allkeys-lru\nloadmodule /tmp/evil.so", "must be one of noeviction"),
    ("redis_app_password", f"{CANARY}\nuser evil on nopass", "control character U+000A"),
    ("postgresql_lab_hba_networks", ["198.18.0.1/32\nhost all all 0.0.0.0/0 trust"], "control character"),
    ("django_demo_bind", f"{address('app1')}\n", "control character U+000A"),
]


def _fingerprint() -> dict[str, str]:
    """ "host:path" -> inode, mtime and SHA-256 of every watched file on every lab host."""
    return fleet_files(WATCHED_GLOBS)


def _assert_failed_at_the_check(proc: Any, variable: str, why: str) -> None:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert re.search(
        rf"toolkit inputs: inventory: {variable} \(host [\w.-]+\): [^\n]*{re.escape(why)}", out
    ), out[-3000:]
    # Nothing past the check play ran: no role task, no change.
    assert not re.search(
        r"^TASK \[(?:pgbouncer_django\.toolkit\.)?"
        r"(?:(?:postgresql_lab|pgbouncer|redis|django_demo) :|toolkit : Size)",
        out,
        re.MULTILINE,
    )
    assert not re.search(r"^changed:", out, re.MULTILINE)


@pytest.fixture(scope="module")
def baseline() -> dict[str, str]:
    before = _fingerprint()
    deployed = {"pgb1:/etc/pgbouncer/pgbouncer.ini", "pgb2:/etc/pgbouncer/pgbouncer-2.ini"}
    deployed |= {"app1:/opt/toolkit-demo/etc/app1.json", "app2:/opt/toolkit-demo/etc/app2.json"}
    deployed |= {"redis1:/etc/redis/redis-server.acl", "db1:/etc/postgresql/17/main/pg_hba.conf"}
    assert deployed <= set(before), (
        f"the lab is not deployed ({sorted(deployed - set(before))}): run 'make lab'"
    )
    return before


@pytest.mark.parametrize(("variable", "value", "why"), HOSTILE, ids=[v for v, _, _ in HOSTILE])
def test_lab_playbook_fails_at_the_check_and_changes_no_file(
    baseline: dict[str, str], variable: str, value: Any, why: str
) -> None:
    proc = ansible_playbook("playbooks/lab.yml", "-e", json.dumps({variable: value}), timeout=300)
    _assert_failed_at_the_check(proc, variable, why)
    assert CANARY not in proc.stdout + proc.stderr
    for secret in (p for p in SECRETS.glob("*") if p.is_file()):
        assert secret.read_text().strip() not in proc.stdout + proc.stderr, secret.name
    assert _fingerprint() == baseline


def test_a_bad_redis_value_leaves_no_pgbouncer_config_behind(baseline: dict[str, str]) -> None:
    proc = ansible_playbook(
        "playbooks/site.yml", "-e", json.dumps({"redis_maxmemory_policy": "noeviction\nloadmodule /x.so"})
    )
    _assert_failed_at_the_check(proc, "redis_maxmemory_policy", "must be one of noeviction")
    assert _fingerprint() == baseline


# Issue 11 §4: a misspelled variable (django_worker: 8 left the node at one worker) fails the check play
# naming the closest known variable, by -e and from an inventory file; a misspelled secret stays secret.
MISSPELLED: list[tuple[str, Any, str]] = [
    ("django_worker", 8, "did you mean django_workers?"),
    ("pgbouncer_pool_mod", "session", "did you mean pgbouncer_pool_mode?"),
    ("redis_app_pasword", CANARY, "did you mean redis_app_password?"),
]


@pytest.mark.parametrize(("variable", "value", "why"), MISSPELLED, ids=[v for v, _, _ in MISSPELLED])
def test_a_misspelled_variable_fails_at_the_check_and_changes_no_file(
    baseline: dict[str, str], variable: str, value: Any, why: str
) -> None:
    proc = ansible_playbook("playbooks/lab.yml", "-e", json.dumps({variable: value}), timeout=300)
    _assert_failed_at_the_check(proc, variable, why)
    assert CANARY not in proc.stdout + proc.stderr
    assert _fingerprint() == baseline


def test_a_misspelled_variable_in_the_inventory_fails_at_the_check(
    baseline: dict[str, str], tmp_path: Path
) -> None:
    extra = tmp_path / "misspelled.yml"
    extra.write_text(
        "all:\n  children:\n    django:\n      hosts:\n        app2:\n          django_worker: 8\n"
    )
    proc = ansible_playbook("-i", "inventory/lab", "-i", str(extra), "playbooks/lab.yml", timeout=300)
    _assert_failed_at_the_check(proc, "django_worker", "did you mean django_workers?")
    assert "django_worker (host app2)" in proc.stdout + proc.stderr
    assert _fingerprint() == baseline


def test_a_variable_listed_in_toolkit_extra_variables_passes_the_check(tmp_path: Path) -> None:
    """Only lab.yml's first play runs (copied into its own playbook): nothing is deployed."""
    check_play = yaml.safe_load((ROOT / "playbooks" / "lab.yml").read_text())[:1]
    playbook = tmp_path / "check.yml"
    playbook.write_text(yaml.safe_dump(check_play))
    own = {"toolkit_extra_variables": ["django_app_*"], "django_app_release": "2026.11"}
    proc = ansible_playbook(str(playbook), "-e", json.dumps(own), timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    proc = ansible_playbook(str(playbook), "-e", json.dumps({"django_app_release": "2026.11"}), timeout=120)
    assert proc.returncode != 0
    assert re.search(
        r"toolkit inputs: inventory: django_app_release \(host [\w.-]+\): is not a variable",
        proc.stdout + proc.stderr,
    )

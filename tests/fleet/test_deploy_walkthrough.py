"""docs/deploy.md, run as written against the fleet (issue 11: "a test runs the example through the steps").

The commands of the `sh` blocks of sections 2 to 4 run in order, from the checkout, with the page's three
placeholders replaced: `inventory/mine` by a copy in a temporary directory (beside a link to the
checkout's `.lab/`, where the lab inventory finds its SSH config), `~/.vault_pass` by a throwaway vault
password file, and `~/.toolkit-secrets` by the lab's secrets directory. The one step a user does in an
editor, writing `group_vars/all/vault.yml`, is done here with the fleet's own passwords, so the deploy
carries the values `make lab` deployed: it must report changed=0 on every host and leave the fleet as
it was. Hold the lab lock:
`flock /tmp/toolkit-lab.lock pytest -m fleet tests/fleet/test_deploy_walkthrough.py`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fleet.conftest import recaps

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
SECRETS = ROOT / ".lab"
DOC = ROOT / "docs" / "deploy.md"
PROGRAMS = {"toolkit", "ansible-playbook", "ansible-vault", "cp", "sed", "rm"}
# The lab's one documented finding (docs/checks.md); `make lab` accepts it and nothing else.
LAB_FINDINGS = {"pgbouncer.version_outdated"}
TIMES: list[str] = []


def doc_commands() -> list[str]:
    """The lines of the ```sh blocks of sections 2, 3 and 4 of docs/deploy.md, in order."""
    commands: list[str] = []
    section = ""
    in_block = False
    for line in DOC.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].split(".", 1)[0]
        elif line.strip() == "```sh":
            in_block = True
        elif line.strip() == "```":
            in_block = False
        elif in_block and section in {"2", "3", "4"} and line.strip() and not line.startswith("#"):
            commands.append(line.strip())
    return commands


def test_the_page_has_every_step_in_order() -> None:
    kinds = [_kind(shlex.split(c)) for c in doc_commands()]
    assert kinds == [
        "copy",
        "drop the demo app",
        "plan",
        "syntax-check",
        "remove secrets",
        "encrypt",
        "plan",
        "check",
        "deploy",
        "doctor",
    ], doc_commands()


def _kind(argv: list[str]) -> str:
    program = argv[0]
    assert program in PROGRAMS, f"docs/deploy.md runs {program!r}, which this test does not know"
    if program == "ansible-playbook":
        return "syntax-check" if "--syntax-check" in argv else "check" if "--check" in argv else "deploy"
    return {
        "cp": "copy",
        "sed": "drop the demo app",
        "rm": "remove secrets",
        "ansible-vault": "encrypt",
        "toolkit": argv[1],
    }[program]


def _lab_passwords() -> dict[str, str]:
    """The lab inventory's password variables and their values (read from the files its lookups make)."""
    source = yaml.safe_load((ROOT / "inventory" / "lab" / "group_vars" / "all" / "secrets.yml").read_text())
    values = {}
    for name, value in source.items():
        match = re.search(r"lab_secrets_dir ~ '/(\w+) '", str(value))
        if match:
            path = SECRETS / match.group(1)
            if not path.is_file():
                pytest.fail(f"{path} is missing: run make lab")
            values[name] = path.read_text().strip()
    assert "lab_pgbouncer_admin_password" in values and "lab_scram_salt_seed" in values, values.keys()
    return values


def _run(argv: list[str], timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    program = str(BIN / argv[0]) if argv[0] in {"toolkit", "ansible-playbook", "ansible-vault"} else argv[0]
    start = time.monotonic()
    proc = subprocess.run(
        [program, *argv[1:]],
        cwd=ROOT,
        env={
            **os.environ,
            "PATH": f"{BIN}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_FORCE_COLOR": "0",
        },
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    TIMES.append(f"{time.monotonic() - start:6.1f} s  exit {proc.returncode}  {shlex.join(argv)}")
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc


def test_the_walkthrough_deploys_the_lab_shape_onto_the_fleet(fleet: Any, tmp_path: Path) -> None:
    inventory = tmp_path / "inventory" / "mine"
    inventory.parent.mkdir()
    (tmp_path / ".lab").symlink_to(SECRETS)
    vault_pass = tmp_path / "vault_pass"
    vault_pass.write_text(secrets.token_urlsafe(24) + "\n")
    vault_pass.chmod(0o600)
    places = {
        "inventory/mine": str(inventory),
        "~/.vault_pass": str(vault_pass),
        "~/.toolkit-secrets": str(SECRETS),
    }
    passwords = _lab_passwords()
    lab_plan = _run(["toolkit", "plan", "-i", "inventory/lab"])
    assert lab_plan.returncode == 0, lab_plan.stderr
    seen: list[str] = []
    try:
        for written in doc_commands():
            line = written
            for placeholder, real in places.items():
                line = line.replace(placeholder, real)
            argv = shlex.split(line)
            kind = _kind(argv)
            seen.append(kind)
            if kind == "encrypt":
                # The editor step of section 3: the vault file, with the fleet's passwords.
                vault = inventory / "group_vars" / "all" / "vault.yml"
                vault.write_text(yaml.safe_dump(passwords))
            proc = _run(argv)
            out = proc.stdout + proc.stderr
            if kind == "doctor":
                assert proc.returncode == 2, out[-3000:]
                report = _run([*argv, "--format", "json"])
                doc = json.loads(report.stdout)
                assert {f["id"] for f in doc["findings"]} == LAB_FINDINGS, doc["findings"]
                assert [t for t in doc["targets"] if not t["ok"]] == []
                continue
            assert proc.returncode == 0, f"{line}: exit {proc.returncode}\n{out[-4000:]}"
            if kind == "plan":
                # The copy plans exactly what the fleet runs, vault or not.
                assert proc.stdout.replace(str(inventory), "inventory/lab") == lab_plan.stdout
            elif kind == "drop the demo app":
                assert "django_demo_" not in (inventory / "hosts.yml").read_text()
            elif kind == "remove secrets":
                assert not (inventory / "group_vars" / "all" / "secrets.yml").exists()
            elif kind == "encrypt":
                text = (inventory / "group_vars" / "all" / "vault.yml").read_text()
                assert text.startswith("$ANSIBLE_VAULT;")
                assert not any(p in text for p in passwords.values())
            elif kind in {"check", "deploy"}:
                recap = recaps(proc.stdout)
                assert set(recap) >= {"pgb1", "pgb2", "redis1", "redis2"}, proc.stdout[-2000:]
                assert all(u == 0 and f == 0 for _, u, f in recap.values()), recap
                changed = {h: c for h, (c, _, _) in recap.items() if c}
                TIMES.append(f"          {kind}: changed per host {changed or 'none'}")
                if kind == "deploy":
                    # The same roles and values as make lab: nothing may change on the fleet.
                    assert changed == {}, proc.stdout[-4000:]
        assert "deploy" in seen and "doctor" in seen
    finally:
        print("\n".join(["", "docs/deploy.md walkthrough:", *TIMES]))

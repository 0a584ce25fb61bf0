"""One source for the sizing code: the collection's plugins/plugin_utils/ is toolkit/domain/, generated.

The roles' filters need the domain on a controller without the toolkit package, so the collection
carries a copy (scripts/generate_plugin_utils.py). These tests regenerate it in memory and fail when the
committed copy differs, so a change to toolkit/domain/ cannot reach the roles without the copy.
"""

from __future__ import annotations

import ast
import shutil
import sys
import tomllib
from pathlib import Path

import yaml

from scripts.generate_plugin_utils import OUT, SEEDS, TARGET, differences, main, render

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_copy_is_the_domain() -> None:
    assert differences() == [], "run python scripts/generate_plugin_utils.py and commit plugins/plugin_utils/"


def test_the_copy_holds_what_the_filters_import_and_what_that_imports() -> None:
    names = {Path(p).stem for p in render()}
    assert set(SEEDS) <= names
    assert {"models", "plan", "validate"} <= names  # imported by sizing, inventory, role_inputs


def test_the_copy_imports_only_the_standard_library_and_itself() -> None:
    for path, text in render().items():
        assert text.startswith(f"# Generated from toolkit/domain/{Path(path).name} by "), path
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith(TARGET):
                assert node.module.split(".")[0] in {"__future__", *sys.stdlib_module_names}
            if isinstance(node, ast.Import):
                assert all(not a.name.startswith("toolkit") for a in node.names), path


def test_a_changed_domain_module_is_reported(tmp_path: Path) -> None:
    """The check can fail: a copy tree whose domain changed after generation is reported stale."""
    shutil.copytree(ROOT / "toolkit" / "domain", tmp_path / "toolkit" / "domain")
    shutil.copytree(ROOT / OUT, tmp_path / OUT)
    assert differences(tmp_path) == []
    scram = tmp_path / "toolkit" / "domain" / "scram.py"
    scram.write_text(scram.read_text() + "\nITERATIONS_CHANGED = True\n")
    (tmp_path / OUT / "leftover.py").write_text("")
    assert differences(tmp_path) == [str(OUT / "leftover.py"), str(OUT / "scram.py")]


def test_the_check_command_exits_0_on_the_committed_copy() -> None:
    assert main(["--check"]) == 0
    assert main(["--bogus"]) == 64


def test_the_collection_version_is_the_package_version() -> None:
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert (galaxy["namespace"], galaxy["name"]) == ("pgbouncer_django", "toolkit")
    assert galaxy["version"] == project["version"]
    lab_only = {"roles/postgresql_lab", "roles/django_demo", "toolkit", "tests", "lab"}
    assert lab_only <= set(galaxy["build_ignore"])

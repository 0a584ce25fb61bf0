"""The layering docs/architecture.md describes: domain is pure, filters are thin, modules stay small, and the
package users install carries no lab code."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STDLIB = sys.stdlib_module_names


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _python_files(*tops: str) -> list[Path]:
    return [path for top in tops for path in sorted((ROOT / top).rglob("*.py"))]


def test_domain_imports_only_stdlib_and_itself() -> None:
    for path in (ROOT / "toolkit/domain").rglob("*.py"):
        for name in _imports(path):
            top = name.split(".")[0]
            assert top in STDLIB or name.startswith("toolkit.domain"), f"{path.name} imports {name}"


def test_adapters_never_import_the_cli() -> None:
    for path in (ROOT / "toolkit/adapters").rglob("*.py"):
        assert not any(n.startswith("toolkit.cli") for n in _imports(path)), path


def test_filter_plugins_import_only_the_domain() -> None:
    """The collection's filters import the generated copy of the domain (plugin_utils), not the package."""
    plugins = list((ROOT / "plugins" / "filter").glob("*.py"))
    assert plugins
    copy = "ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils."
    for path in plugins:
        project = {n for n in _imports(path) if n.startswith(("toolkit", "ansible_collections"))}
        assert project and all(n.startswith(copy) for n in project), (path, project)


def test_the_package_never_imports_the_lab() -> None:
    """lab/ (the fleet, the drills, the demo harness) stays in the checkout: no lab in the wheel to import."""
    paths = _python_files("toolkit")
    assert paths
    for path in paths:
        lab = {n for n in _imports(path) if n == "lab" or n.startswith(("lab.", "bench", "tests"))}
        assert not lab, f"{path.relative_to(ROOT)} imports {sorted(lab)}: move that code to lab/"


# What only the lab does, as root: the demo app's paths, dropping to another user, changing owners.
LAB_ONLY = ("/opt/toolkit-demo", "runuser", "chown(", "toolkit-demo")


def test_the_package_holds_no_lab_only_code() -> None:
    for path in [*_python_files("toolkit"), *(ROOT / "toolkit").rglob("*.md")]:
        text = path.read_text()
        found = [word for word in LAB_ONLY if word in text]
        assert not found, f"{path.relative_to(ROOT)} holds lab-only {found}: move it to lab/"


def test_modules_stay_small() -> None:
    for path in _python_files("toolkit", "lab/drills"):
        lines = len(path.read_text().splitlines())
        assert lines <= 400, f"{path.relative_to(ROOT)} has {lines} lines; split it"


def test_every_module_has_a_docstring() -> None:
    for path in _python_files("toolkit", "lab/drills"):
        assert ast.get_docstring(ast.parse(path.read_text())), path

"""Generate the collection's copy of the sizing code: plugins/plugin_utils/ from toolkit/domain/.

The roles' filters (plugins/filter/toolkit.py) must work on a controller that has only ansible-core, so
the collection carries the toolkit.domain modules they need, with their imports rewritten to the
collection's namespace. toolkit/domain/ stays the one source: never edit the copy, change the domain and
run this script (`make collection` runs it before it builds the tarball). tests/unit/test_plugin_utils.py
regenerates the copy in memory and fails when the committed one differs.

    python scripts/generate_plugin_utils.py          # write plugins/plugin_utils/
    python scripts/generate_plugin_utils.py --check  # exit 1 naming each file that differs
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOMAIN = "toolkit.domain"
TARGET = "ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils"
OUT = Path("plugins/plugin_utils")
# What the filters import; the modules these import in turn are added (render follows the imports).
SEEDS = (
    "sizing",
    "inventory",
    "known_variables",
    "role_inputs",
    "scram",
    "errors",
    "pgbouncer_rows",
    "redis_config",
)
LINE_LENGTH = 110  # ruff's line-length (pyproject.toml): a long rewritten import is wrapped as ruff would


def _domain_imports(tree: ast.Module, name: str) -> list[ast.ImportFrom]:
    found: list[ast.ImportFrom] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.startswith(DOMAIN) for a in node.names):
            raise SystemExit(f"toolkit/domain/{name}.py: write 'from {DOMAIN}.X import Y' (rewritten)")
        if isinstance(node, ast.ImportFrom) and node.level:
            raise SystemExit(f"toolkit/domain/{name}.py: a relative import; use 'from {DOMAIN}.X import Y'")
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(DOMAIN + "."):
            found.append(node)
    return found


def _module_name(node: ast.ImportFrom, name: str) -> str:
    module = (node.module or "").removeprefix(DOMAIN + ".")
    if "." in module:
        raise SystemExit(f"toolkit/domain/{name}.py imports {node.module}: only top-level modules are copied")
    return module


def _rewrite(source: str, name: str) -> tuple[str, set[str]]:
    """Return the source with its domain imports pointing into the collection, and what it imports."""
    lines = source.splitlines(keepends=True)
    nodes = _domain_imports(ast.parse(source), name)
    needs = {_module_name(node, name) for node in nodes}
    for node in sorted(nodes, key=lambda n: n.lineno, reverse=True):
        start, end = node.lineno - 1, node.end_lineno or node.lineno
        old = "".join(lines[start:end])
        indent = old[: len(old) - len(old.lstrip())]
        new = old.replace(f"from {DOMAIN}.", f"from {TARGET}.", 1)
        if end - start == 1 and len(new.rstrip("\n")) > LINE_LENGTH:
            module = f"{TARGET}.{_module_name(node, name)}"
            names = "".join(
                f"{indent}    {a.name}{f' as {a.asname}' if a.asname else ''},\n" for a in node.names
            )
            new = f"{indent}from {module} import (\n{names}{indent})\n"
        lines[start:end] = [new]
    return "".join(lines), needs


def render(root: Path = ROOT) -> dict[str, str]:
    """Return {path relative to the repo: text} of every file of plugins/plugin_utils/."""
    todo, done = list(SEEDS), {}
    while todo:
        name = todo.pop()
        if name in done:
            continue
        source = (root / "toolkit" / "domain" / f"{name}.py").read_text()
        text, needs = _rewrite(source, name)
        header = (
            f"# Generated from toolkit/domain/{name}.py by scripts/generate_plugin_utils.py; do not edit.\n"
            f"# Change toolkit/domain/{name}.py and run `python scripts/generate_plugin_utils.py`.\n"
        )
        done[name] = header + text
        todo += sorted(needs - done.keys())
    return {str(OUT / f"{name}.py"): done[name] for name in sorted(done)}


def differences(root: Path = ROOT) -> list[str]:
    """Return the files of plugins/plugin_utils/ that are missing, stale or not generated."""
    wanted = render(root)
    present = {str(p.relative_to(root)) for p in (root / OUT).glob("*.py")}
    stale = [p for p, text in wanted.items() if p not in present or (root / p).read_text() != text]
    return sorted(stale + [p for p in present - wanted.keys()])


def main(argv: list[str]) -> int:
    """Write the copy, or with --check report the files that differ (exit 1)."""
    if argv == ["--check"]:
        stale = differences()
        for path in stale:
            print(f"{path}: differs from toolkit/domain; run python scripts/generate_plugin_utils.py")
        return 1 if stale else 0
    if argv:
        print("usage: python scripts/generate_plugin_utils.py [--check]", file=sys.stderr)
        return 64
    wanted = render()
    (ROOT / OUT).mkdir(parents=True, exist_ok=True)
    for old in (ROOT / OUT).glob("*.py"):
        if str(old.relative_to(ROOT)) not in wanted:
            old.unlink()
    for path, text in wanted.items():
        if not (ROOT / path).exists() or (ROOT / path).read_text() != text:
            (ROOT / path).write_text(text)
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

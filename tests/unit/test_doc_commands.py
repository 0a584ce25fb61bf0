"""Every `toolkit ...` command the README and docs/ show parses: the command, its options, and the runbook
it names. A command the CLI would reject with a usage error is a doc defect a user copies."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from toolkit.cli.app import app
from toolkit.runbooks import MANUAL, runbooks

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PROMPT = re.compile(r"^\s*(?:\$\s+)?(?:(?:\./)?\.venv/bin/|sudo\s+)?(toolkit\s.*)$")
INLINE = re.compile(r"`((?:\.venv/bin/)?toolkit\s[^`]+)`")
# Words a page uses for "put your own here": not a runbook name the CLI could know.
PLACEHOLDER = re.compile(r"^(?:[A-Z_]+|<[^>]+>|\.\.\.)$")


def _fenced_commands(text: str) -> list[str]:
    found, fenced, pending = [], False, ""
    for raw in text.splitlines():
        line = raw
        if line.lstrip().startswith("```"):
            fenced, pending = not fenced, ""
            continue
        if not fenced:
            continue
        if pending:
            line, pending = pending + " " + line.strip(), ""
        match = PROMPT.match(line)
        if match is None:
            continue
        if match.group(1).rstrip().endswith("\\"):
            pending = match.group(1).rstrip()[:-1]
            continue
        found.append(match.group(1))
    return found


def doc_commands() -> list[tuple[str, str]]:
    """(where, command) for each toolkit command in a code block or an inline code span."""
    commands = []
    for page in DOCS:
        text = page.read_text()
        where = str(page.relative_to(ROOT))
        commands += [(where, c) for c in _fenced_commands(text)]
        commands += [(where, c) for c in INLINE.findall(text)]
    return commands


def _words(command: str) -> list[str]:
    """The words after ``toolkit``; a synopsis's ``[--opt V]`` counts as given, ``a|b`` as its first."""
    command = re.sub(r"\[([^\]]*)\]", r"\1", command.replace("\\|", "|"))
    words = [w if w == "|" or "|" not in w else w.split("|")[0] for w in shlex.split(command, comments=True)]
    # A placeholder option value (N, SECONDS, DIR) stands for a valid one: "1" parses as any of them.
    words = [
        "1" if i and words[i - 1].startswith("--") and PLACEHOLDER.match(w) else w
        for i, w in enumerate(words)
    ]
    for i, word in enumerate(words):  # the toolkit's own words end where the shell takes over
        if word in {"|", "||", "&&", ";", ">", ">>", "2>&1", "2>/dev/null"}:
            words = words[:i]
            break
    return words[1:]


def _parse(words: list[str]) -> None:
    """Parse like the CLI would, without running anything; a usage error raises."""
    command = typer.main.get_command(app)
    ctx = command.make_context("toolkit", list(words), resilient_parsing=False)
    while hasattr(ctx.command, "resolve_command"):  # a group: the subcommand's words are still to parse
        rest = [*getattr(ctx, "_protected_args", []), *ctx.args]
        if not rest:
            break
        name, sub, args = ctx.command.resolve_command(ctx, rest)
        assert sub is not None and name is not None
        ctx = sub.make_context(name, args, parent=ctx, resilient_parsing=False)
    if words[:2] == ["runbook", "run"] and len(words) > 2 and not PLACEHOLDER.match(words[2]):
        known = set(runbooks()) | {m.name for m in MANUAL}
        assert words[2] in known, f"no runbook {words[2]!r}"


COMMANDS = doc_commands()


def test_the_docs_show_commands_at_all() -> None:
    assert len(COMMANDS) > 30, "the extraction found too few commands: is the pattern broken?"


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w}:{c[:60]}" for w, c in COMMANDS])
def test_each_documented_command_parses(where: str, command: str) -> None:
    words = _words(command)
    if {"--help", "--version", "--install-completion", "--show-completion"} & set(words):
        return  # eager options end the parse by exiting, with nothing to check past them
    try:
        _parse(words)
    except Exception as exc:  # click's usage errors come from typer's own copy of click
        pytest.fail(f"{where}: {command!r} does not parse: {exc}")


def test_a_wrong_option_does_fail_to_parse() -> None:
    with pytest.raises(Exception, match="No such option"):
        _parse(["doctor", "-i", "inventory/lab", "--no-such-option"])
    with pytest.raises(AssertionError, match="no runbook"):
        _parse(["runbook", "run", "no-such-runbook", "-i", "inventory/lab"])

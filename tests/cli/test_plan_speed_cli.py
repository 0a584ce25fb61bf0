"""Issue 13 §8: what ``toolkit plan`` imports, and that the coercion it uses is typer's in effect.

typer coerces options through pydantic, about 150 ms of import; toolkit/cli/coercion.py handles the
str, bool and Enum options without it. A typer release that moves the hook makes ``toolkit plan``
import pydantic again: the first test says so (and that the JSON plan imports neither rich, nor the
drivers, nor doctor's checks and snapshot types: its peers note is in toolkit/domain/peers.py).
The others hold the shortcut to typer's own results and messages. No timing asserts
(bench/plan_speed.py measures).
"""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import pytest
import typer
from typer.testing import CliRunner

from toolkit.cli import coercion

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import sys
from toolkit.cli.app import main
try:
    main(["plan", "-i", "inventory/lab", "--format", "json"])
except SystemExit as done:
    assert done.code in (0, None), done.code
heavy = ("pydantic", "rich", "psycopg", "redis", "toolkit.domain.checks", "toolkit.domain.snapshot")
print(",".join(sorted(m for m in heavy if m in sys.modules)))
"""


def test_plan_imports_neither_pydantic_nor_the_drivers_nor_the_checks() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    )
    assert proc.stdout.splitlines()[-1] == ""


class Colour(enum.StrEnum):
    red = "red"
    blue = "blue"


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def show(
        name: Annotated[str, typer.Option("--name")] = "x",
        colour: Annotated[Colour, typer.Option("--colour")] = Colour.red,
        flag: Annotated[bool, typer.Option("--flag")] = False,
        count: Annotated[int, typer.Option("--count")] = 1,
    ) -> None:
        typer.echo(f"{name!r} {colour!r} {flag!r} {count!r}")

    return app


@pytest.mark.parametrize(
    ("args", "out"),
    [
        ([], "'x' <Colour.red: 'red'> False 1"),
        (
            ["--name", "ü b", "--colour", "blue", "--flag", "--count", "3"],
            "'ü b' <Colour.blue: 'blue'> True 3",
        ),
    ],
)
def test_the_shortcut_gives_typers_values(args: list[str], out: str) -> None:
    assert coercion.install()
    result = CliRunner().invoke(_app(), args)
    assert (result.exit_code, result.output.strip()) == (0, out)


def test_a_bad_choice_reads_as_typer_words_it() -> None:
    assert coercion.install()
    command = typer.main.get_command(_app())
    with pytest.raises(Exception) as raised:  # typer's own click copy: matched by name, as app.py does
        command.main(["--colour", "green"], standalone_mode=False)
    assert type(raised.value).__name__ == "BadParameter"
    assert raised.value.format_message() == (  # type: ignore[attr-defined]
        "Invalid value for '--colour': Value error, 'green' is not one of 'red', 'blue'."
    )

"""The line a command that reads an inventory prints first on stderr, and stderr without it."""

from __future__ import annotations

import re

# toolkit: inventory tests/fixtures/inventories/small.yml (from -i)
INVENTORY_LINE = re.compile(r"\Atoolkit: inventory (?P<paths>[^\n]+) \(from (?P<origin>[^)\n]+)\)\n")


def without_inventory_line(err: str) -> str:
    """``err`` without the leading inventory line (the errors and notes a test asserts on)."""
    return INVENTORY_LINE.sub("", err, count=1)

# Generated from toolkit/domain/redis_config.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/redis_config.py and run `python scripts/generate_plugin_utils.py`.
"""Redis CONFIG GET as printed by redis-cli: the one place its output is read.

Pure. redis-cli (not on a terminal) prints each name and its value on alternate lines. An empty
value (``save ""``) is an empty line, and the last one is lost when the output's final newline is
stripped (Ansible's ``stdout`` strips it), so an odd number of lines ends with an empty value.
"""

from __future__ import annotations


def config_get(text: str) -> dict[str, str]:
    """redis-cli CONFIG GET output -> {name: value}.

    >>> config_get("maxmemory\\n104857600\\nsave")
    {'maxmemory': '104857600', 'save': ''}
    >>> config_get("")
    {}
    """
    lines = text.split("\n") if text else []
    if lines and lines[-1] == "" and len(lines) % 2 == 1:
        lines.pop()  # the output's own final newline, not an empty value
    if len(lines) % 2:
        lines.append("")
    for line in lines[::2]:
        if not line or line.startswith("(error)") or line.startswith("ERR"):
            raise ValueError(f"not CONFIG GET output: a name line reads {line!r}; did redis-cli fail?")
    return dict(zip(lines[::2], lines[1::2], strict=True))

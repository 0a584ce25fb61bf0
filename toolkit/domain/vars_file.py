"""Set one top-level key in the text of a host_vars/group_vars YAML file, keeping everything else.

The edit works on lines, not on a parsed document, so comments, key order, quoting and blank lines
stay as the author wrote them: the key's line (and the indented lines of a value it spans) is replaced
in place, or the line is appended at the end. It understands block-style files only; the caller parses
the result and compares it with the original to catch anything it got wrong (a flow-style mapping, a
key written twice, a second document).

>>> print(set_top_level_key("---\\n# pools\\npgbouncer_pool_mode: transaction\\n", "pool", 8), end="")
---
# pools
pgbouncer_pool_mode: transaction
pool: 8
>>> print(set_top_level_key("a: 1\\npool: 20  # old\\nb:\\n  - x\\n", "pool", 8, "swept"), end="")
a: 1
pool: 8  # swept
b:
  - x
"""

from __future__ import annotations

import re

# What ansible-vault writes on the first line of an encrypted file.
VAULT_HEADER = "$ANSIBLE_VAULT;"


def is_vault_encrypted(text: str) -> bool:
    """True when the whole file is ansible-vault encrypted.

    >>> is_vault_encrypted("$ANSIBLE_VAULT;1.1;AES256\\n6162\\n"), is_vault_encrypted("a: 1\\n")
    (True, False)
    """
    return text.lstrip().startswith(VAULT_HEADER)


def _continues(line: str) -> bool:
    """A line that belongs to the value above it: indented, or a block sequence item at column 0."""
    return line[:1] in (" ", "\t") or line.rstrip("\r\n") == "-" or line.startswith("- ")


def set_top_level_key(text: str, key: str, value: int, comment: str = "") -> str:
    """``text`` with ``key: value`` (and `` # comment``) in place of the top-level key, or appended.

    Only the first top-level occurrence is replaced; lines of its old value (indented lines, or block
    sequence items) go with it. Trailing blank lines inside the old value's extent are kept. An empty
    text becomes a file that starts with ``---``.

    >>> set_top_level_key("", "pool", 8)
    '---\\npool: 8\\n'
    >>> set_top_level_key("pool:\\n- 1\\n- 2\\n\\nnext: 3", "pool", 4)
    'pool: 4\\n\\nnext: 3\\n'
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise ValueError(f"not a plain variable name: {key!r}")
    line = f"{key}: {value}" + (f"  # {comment}" if comment else "") + "\n"
    if not text.strip():
        return "---\n" + line
    lines = text.splitlines(keepends=True)
    if not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    head = re.compile(rf"{re.escape(key)}\s*:(\s|$)")
    for i, current in enumerate(lines):
        if head.match(current):
            end = i + 1
            while end < len(lines) and (_continues(lines[end]) or not lines[end].strip()):
                end += 1
            while end > i + 1 and not lines[end - 1].strip():  # blank lines before the next key stay
                end -= 1
            return "".join([*lines[:i], line, *lines[end:]])
    return "".join([*lines, line])

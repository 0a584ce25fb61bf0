"""Plan of the snapshot runbook, and the masking that keeps secrets out of the bundle.

A snapshot is evidence for the postmortem: every SHOW output, the sessions, lock waits, Redis INFO and
doctor's findings in one JSON file. Its only action is writing that file.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

from toolkit.domain.runbooks.base import Action, RunbookError, RunbookPlan

MASK = "****"
# Keys whose value is a secret: "password", "auth_password", "requirepass" (not "password_encryption").
_SECRET_KEY = re.compile(r"(^|[_-])(pass(word)?|passwd|secret|token|requirepass|masterauth)$", re.IGNORECASE)
_DSN_URL = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
_DSN_KV = re.compile(r"(\bpassword\s*=\s*)('[^']*'|\S+)", re.IGNORECASE)


def mask_text(text: str, secrets: Collection[str] = ()) -> str:
    """Mask DSN passwords and any known secret in ``text``.

    >>> mask_text("postgresql://app:s3cret@127.0.0.1/app host=x password=abc")
    'postgresql://app:****@127.0.0.1/app host=x password=****'
    >>> mask_text("token is abc123", ["abc123"])
    'token is ****'
    """
    text = _DSN_URL.sub(lambda m: m.group(1) + MASK + "@", text)
    text = _DSN_KV.sub(lambda m: m.group(1) + MASK, text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def mask(value: Any, secrets: Collection[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with secret-looking keys' values and secrets in text masked.

    >>> mask({"auth_password": "x", "rows": [{"dsn": "redis://u:p@h:1"}], "port": 6432})
    {'auth_password': '****', 'rows': [{'dsn': 'redis://u:****@h:1'}], 'port': 6432}
    """
    if isinstance(value, dict):
        return {
            str(k): MASK if _SECRET_KEY.search(str(k)) and v not in (None, "") else mask(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask(v, secrets) for v in value]
    if isinstance(value, str):
        return mask_text(value, secrets)
    return value


def plan_snapshot(output: str | None, sources: Collection[str]) -> RunbookPlan:
    """Write one JSON bundle to ``output`` (mode 0600).

    >>> plan_snapshot("/tmp/s.json", ["pgbouncer@127.0.0.1:6432"]).actions[0].kind
    'write_snapshot'
    """
    if not output:
        raise RunbookError("snapshot needs -o FILE (where to write the JSON bundle)")
    action = Action(
        output,
        "write_snapshot",
        {"file": output, "sources": len(sources)},
        "evidence for the postmortem: SHOW output, sessions, lock waits, Redis INFO, doctor findings",
    )
    notes = (
        f"reads {', '.join(sorted(sources))}; changes nothing on any server",
        "the file is written mode 0600; passwords and DSN passwords are masked",
    )
    return RunbookPlan("snapshot", (action,), notes)

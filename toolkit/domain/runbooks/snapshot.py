"""Plan of the snapshot runbook, and the masking that keeps secrets out of the bundle.

A snapshot is evidence for the postmortem: every SHOW output, the sessions, lock waits, Redis INFO and
doctor's findings in one JSON file. Its only action is writing that file.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from toolkit.domain import secrets as _secrets
from toolkit.domain.runbooks.base import Action, RunbookPlan, RunbookUsageError

MASK = _secrets.MASK


def mask_text(text: str, secrets: Collection[str] = ()) -> str:
    """Mask DSN passwords, SQL and environment passwords, and any known secret in ``text``.

    The rules live in :mod:`toolkit.domain.secrets`, shared with the Django probe.

    >>> mask_text("postgresql://app:s3cret@127.0.0.1/app host=x password=abc")
    'postgresql://app:****@127.0.0.1/app host=x password=****'
    >>> mask_text("token is abc123", ["abc123"])
    'token is ****'
    """
    return _secrets.mask_text(text, secrets, MASK)


def mask(value: Any, secrets: Collection[str] = ()) -> Any:
    """A copy of ``value`` (JSON-like) with secret-looking keys' values and secrets in text masked.

    >>> mask({"auth_password": "x", "rows": [{"dsn": "redis://u:p@h:1"}], "port": 6432})
    {'auth_password': '****', 'rows': [{'dsn': 'redis://u:****@h:1'}], 'port': 6432}
    """
    return _secrets.mask_tree(value, secrets, MASK)


def plan_snapshot(output: str | None, sources: Collection[str]) -> RunbookPlan:
    """Write one JSON bundle to ``output`` (mode 0600).

    >>> plan_snapshot("/tmp/s.json", ["pgbouncer@127.0.0.1:6432"]).actions[0].kind
    'write_snapshot'
    """
    if not output:
        raise RunbookUsageError("snapshot needs -o FILE (where to write the JSON bundle)")
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

# Generated from toolkit/domain/known_variables.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/known_variables.py and run `python scripts/generate_plugin_utils.py`.
"""Every inventory variable the toolkit knows, so that a misspelled one is an error, not a silent default.

``django_worker: 8`` instead of ``django_workers`` used to leave the node at one worker: the plan
shrank, and nothing said why. A variable under one of the toolkit's prefixes (:data:`PREFIXES`) must
be one of :data:`KNOWN_VARIABLES`: every role input of the validator table
(:data:`toolkit.domain.role_inputs.ROLE_INPUTS`, which holds the sizing variables too), what doctor
and the runbooks read (:data:`TOOLKIT_VARIABLES`), and the variables the playbooks pass between
roles. A unit test holds every role's defaults and ``meta/argument_specs.yml`` to this set, so it
cannot drift.

A variable of the user's own under one of those prefixes is listed, by name or glob pattern, in
``toolkit_extra_variables``. Names starting with ``__`` (a role's internals) have no prefix here and
are never checked. Only names are read and shown, never values: a misspelled password stays secret.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.django_nodes import SETTINGS_KEYS
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import InventoryError
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.role_inputs import ROLE_INPUTS
from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.versions import ACK_VARIABLE

# The toolkit's prefixes (the lab roles' postgresql_lab_ included; django_demo_ is under django_).
PREFIXES = ("database_", "pgbouncer_", "redis_", "django_", "toolkit_", "postgresql_lab_")
PREFIX_PATTERN = "^(" + "|".join(p.rstrip("_") for p in PREFIXES) + ")_"

EXTRA_VARIABLE = "toolkit_extra_variables"

# Read by doctor and the runbooks (toolkit/domain/targets.py, toolkit/runbooks/pgb.py,
# docs/inventory.md "What doctor connects with"), with the Django settings doctor reads per node
# and the CVE acknowledgements.
TOOLKIT_VARIABLES = frozenset(
    [
        "toolkit_pgbouncer_user",
        "toolkit_pgbouncer_admin_user",
        "toolkit_pgbouncer_address",
        "toolkit_postgres_user",
        "toolkit_postgres_dbname",
        "toolkit_redis_user",
        "toolkit_redis_address",
        "toolkit_redis_key_prefix",
        ACK_VARIABLE,
        EXTRA_VARIABLE,
        *SETTINGS_KEYS,
    ]
)
# Set by the playbooks and the toolkit role, not by users: the plan fact, the check play's role map.
PLAY_VARIABLES = frozenset(["toolkit_plan", "toolkit_check_roles"])

KNOWN_VARIABLES = frozenset(ROLE_INPUTS) | TOOLKIT_VARIABLES | PLAY_VARIABLES

_PREFIXED = re.compile(PREFIX_PATTERN)
_PATTERN = re.compile(r"[A-Za-z0-9_*?\[\]!-]{1,200}")


def is_checked(name: str) -> bool:
    """True for a name under one of the toolkit's prefixes (``__`` internals never are).

    >>> [is_checked(n) for n in ("django_worker", "ansible_host", "__pgbouncer_plan", "groups")]
    [True, False, False, False]
    """
    return _PREFIXED.match(name) is not None


def suggestion(name: str) -> str | None:
    """The known variable closest to ``name``, if one is close enough.

    >>> suggestion("django_worker"), suggestion("pgbouncer_pool_mod"), suggestion("redis_zzz_qqq_www")
    ('django_workers', 'pgbouncer_pool_mode', None)
    """
    found = difflib.get_close_matches(name, sorted(KNOWN_VARIABLES), n=1)
    return found[0] if found else None


def extra_patterns(host: str, value: Any) -> tuple[str, ...]:
    """The names and glob patterns of ``toolkit_extra_variables``: a list of strings.

    A pattern that matches a known variable is refused: ``django_*`` would hide ``django_worker``.
    """
    if value is None:
        return ()
    if not isinstance(value, list):
        kind = type(value).__name__
        raise InventoryError(EXTRA_VARIABLE, host, f"must be a list of names or glob patterns, got {kind}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not _PATTERN.fullmatch(item):
            raise InventoryError(
                EXTRA_VARIABLE,
                host,
                f"entry {i + 1} must be a name or a glob pattern (letters, digits, '_', '*', '?', '[]')",
            )
    for pattern in value:
        hidden = sorted(
            n for n in KNOWN_VARIABLES if is_checked(n) and n != pattern and fnmatch.fnmatchcase(n, pattern)
        )
        if hidden:
            raise InventoryError(
                EXTRA_VARIABLE,
                host,
                f"the pattern {pattern!r} also matches the toolkit's {hidden[0]}, so it would hide a "
                "misspelling of it: narrow it to your own names (such as django_myapp_*)",
            )
    return tuple(value)


def unknown_variables(host: str, names: Iterable[str], extra: Any = None) -> list[str]:
    """The names under the toolkit's prefixes that nothing knows and ``extra`` does not list, sorted.

    >>> unknown_variables("app-1", ["django_worker", "django_my_flag", "ansible_user"], ["django_my_*"])
    ['django_worker']
    """
    patterns = extra_patterns(host, extra)
    return sorted(
        name
        for name in names
        if isinstance(name, str)
        and is_checked(name)
        and name not in KNOWN_VARIABLES
        and not any(fnmatch.fnmatchcase(name, p) for p in patterns)
    )


def check_known_variables(host: str, values: Mapping[str, Any]) -> None:
    """Raise InventoryError for the first variable of ``host`` under a toolkit prefix that nothing knows.

    Only the names of ``values`` are read, and the value of ``toolkit_extra_variables``.
    """
    check_known_names(host, list(values), values.get(EXTRA_VARIABLE))


def check_known_names(host: str, names: Iterable[str], extra: Any = None) -> None:
    """Raise InventoryError for the first of ``names`` under a toolkit prefix that nothing knows."""
    unknown = unknown_variables(host, names, extra)
    if not unknown:
        return
    name = unknown[0]
    close = suggestion(name)
    hint = f"did you mean {close}? " if close else ""
    more = f" (also unknown: {', '.join(unknown[1:])})" if len(unknown) > 1 else ""
    raise InventoryError(
        name,
        host,
        f"is not a variable of the toolkit; {hint}fix the name, or list it in {EXTRA_VARIABLE} "
        f"if it is your own (docs/inventory.md){more}",
    )

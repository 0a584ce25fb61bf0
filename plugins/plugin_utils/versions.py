# Generated from toolkit/domain/versions.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/versions.py and run `python scripts/generate_plugin_utils.py`.
"""Security floors: which PgBouncer and Redis versions carry which fixed CVEs, in one table.

Sources: PgBouncer's NEWS.md (1.24.1, 1.25.1, 1.25.2 sections; 1.26.1 of 2026-10-14 for
CVE-2026-107348..107350) and Redis's advisory for CVE-2025-49844 of 2025-10-03 (fixed in 6.2.20,
7.2.11, 7.4.6, 8.0.4 and 8.2.2; the 7.0 line is end of life and has no upstream fix). Ranges are
inclusive ``(first, last)`` affected versions.

A distribution may ship an old version number with the fix backported (Debian 12's pgbouncer
1.18.0-1+deb12u1 carries the fixes for CVE-2025-2291 and CVE-2025-12819; its redis 5:7.0.15-1~deb12u6
and later carry CVE-2025-49844's). The server cannot tell: the inventory says so with
``toolkit_acknowledged_cves: [CVE-...]`` on the host (or its group), and an acknowledged CVE drops out.

>>> [a.cve for a in affecting("pgbouncer", (1, 25, 2))]
['CVE-2026-107350', 'CVE-2026-107349', 'CVE-2026-107348']
>>> affecting("pgbouncer", (1, 26, 1))
()
>>> [a.cve for a in affecting("redis", (7, 0, 15))]
['CVE-2025-49844']
>>> affecting("redis", (7, 2, 11))
()
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import InventoryError

Version = tuple[int, int, int]
ACK_VARIABLE = "toolkit_acknowledged_cves"
_CVE = re.compile(r"\ACVE-[0-9]{4}-[0-9]{4,}\Z")
_ZERO: Version = (0, 0, 0)

# Kinds of flaw. An authentication bypass is CRITICAL wherever it is present; Lua flaws are CRITICAL
# only where the app's ACL user may run scripts (the check decides); the rest are WARNING.
AUTH_BYPASS = "authentication bypass"
LUA_RCE = "Lua use-after-free (remote code execution by a user allowed to run scripts)"


@dataclass(frozen=True)
class Advisory:
    """One CVE of one product: the affected version ranges and the release that fixes it."""

    product: str  # pgbouncer, redis
    cve: str
    kind: str
    affected: tuple[tuple[Version, Version], ...]
    fixed_in: str

    def affects(self, version: Version) -> bool:
        """Whether ``version`` lies in one of the affected ranges."""
        return any(first <= version <= last for first, last in self.affected)


ADVISORIES: tuple[Advisory, ...] = (
    Advisory(
        "pgbouncer",
        "CVE-2026-107350",
        f"{AUTH_BYPASS}: with SCRAM, a client knowing one auth_file user's password logs in as any "
        "other SCRAM user, admins included",
        (((1, 17, 0), (1, 26, 0)),),
        "1.26.1",
    ),
    Advisory("pgbouncer", "CVE-2026-107349", "denial of service", ((_ZERO, (1, 26, 0)),), "1.26.1"),
    Advisory("pgbouncer", "CVE-2026-107348", "denial of service", ((_ZERO, (1, 26, 0)),), "1.26.1"),
    Advisory(
        "pgbouncer",
        "CVE-2026-6664",
        "crash before authentication (malformed SCRAM packet)",
        ((_ZERO, (1, 25, 1)),),
        "1.25.2",
    ),
    Advisory(
        "pgbouncer",
        "CVE-2026-6665",
        "stack overflow from a malicious server's SCRAM nonce",
        ((_ZERO, (1, 25, 1)),),
        "1.25.2",
    ),
    Advisory(
        "pgbouncer",
        "CVE-2026-6666",
        "crash on a server error without SQLSTATE",
        ((_ZERO, (1, 25, 1)),),
        "1.25.2",
    ),
    Advisory(
        "pgbouncer",
        "CVE-2026-6667",
        "KILL_CLIENT allowed to every admin console user, not only admin_users",
        ((_ZERO, (1, 25, 1)),),
        "1.25.2",
    ),
    Advisory(
        "pgbouncer",
        "CVE-2025-12819",
        "SQL run during authentication through search_path (with track_extra_parameters and auth_user)",
        ((_ZERO, (1, 25, 0)),),
        "1.25.1",
    ),
    Advisory(
        "pgbouncer",
        "CVE-2025-2291",
        "auth_query ignored VALID UNTIL: expired passwords still log in",
        ((_ZERO, (1, 24, 0)),),
        "1.24.1",
    ),
    Advisory(
        "redis",
        "CVE-2025-49844",
        LUA_RCE,
        (
            (_ZERO, (6, 2, 19)),
            ((7, 0, 0), (7, 2, 10)),
            ((7, 4, 0), (7, 4, 5)),
            ((8, 0, 0), (8, 0, 3)),
            ((8, 2, 0), (8, 2, 1)),
        ),
        "6.2.20, 7.2.11, 7.4.6, 8.0.4, 8.2.2",
    ),
)


def parse_version(text: str) -> Version | None:
    """The (major, minor, patch) in a version string, or None.

    >>> parse_version("PgBouncer 1.18.0"), parse_version("7.0.15"), parse_version("1.26"), parse_version("x")
    ((1, 18, 0), (7, 0, 15), (1, 26, 0), None)
    """
    m = re.search(r"([0-9]+)\.([0-9]+)(?:\.([0-9]+))?", text, flags=re.ASCII)
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def affecting(
    product: str, version: Version, acknowledged: frozenset[str] = frozenset()
) -> tuple[Advisory, ...]:
    """The advisories of ``product`` that affect ``version`` and are not acknowledged."""
    return tuple(
        a for a in ADVISORIES if a.product == product and a.cve not in acknowledged and a.affects(version)
    )


def floor(product: str) -> str:
    """The oldest release of ``product`` free of every listed CVE of its newest line.

    >>> floor("pgbouncer")
    '1.26.1'
    """
    fixed = [a.fixed_in.split(",")[-1].strip() for a in ADVISORIES if a.product == product]
    return max(fixed, key=lambda v: parse_version(v) or _ZERO)


def acknowledged_cves(host: str, values: Mapping[str, Any]) -> frozenset[str]:
    """The CVE ids a host's ``toolkit_acknowledged_cves`` lists; raise InventoryError if malformed.

    >>> sorted(acknowledged_cves("h", {"toolkit_acknowledged_cves": ["CVE-2025-2291"]}))
    ['CVE-2025-2291']
    """
    raw = values.get(ACK_VARIABLE)
    if raw is None:
        return frozenset()
    if not isinstance(raw, list | tuple):
        raise InventoryError(ACK_VARIABLE, host, "must be a list of CVE ids such as CVE-2025-2291")
    out: set[str] = set()
    for item in raw:
        if not isinstance(item, str) or not _CVE.match(item):
            shown = item if isinstance(item, str) and item.isprintable() and len(item) < 40 else "a value"
            raise InventoryError(
                ACK_VARIABLE, host, f"{shown!r} is not a CVE id (CVE-YYYY-NNNN); list only CVE ids"
            )
        out.add(item)
    return frozenset(out)

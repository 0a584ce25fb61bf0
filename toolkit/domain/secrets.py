"""Masking of secrets in text and in JSON-like data: the one place every output path uses.

What is masked, whatever the case of the key:

- URL userinfo: ``scheme://user:PASSWORD@host`` keeps the user; for Redis schemes a lone userinfo
  (``redis://PASSWORD@host``) is the password. The userinfo runs to the *last* ``@`` of the URL, so
  an unencoded ``@ / ? # , ;`` inside a password is masked with it (over-masking a host that has an
  ``@`` in its query is the safe side).
- ``key=value`` pairs whose key names a password (libpq conninfo ``password='a b'``, URL queries
  ``?password=x&db=1``, ``PGPASSWORD=...``, ``REDISCLI_AUTH=...``, shell-quoted values), and
  ``'PASSWORD': '...'`` in a Python or JSON mapping.
- SQL ``PASSWORD '...'`` (doubled quotes inside, ``E'...'``, dollar quotes, and a literal cut short
  by pg_stat_activity's truncation), redis-cli's ``-a PW`` / ``--pass PW`` and ``ACL SETUSER`` rules.
- Any known secret passed in, wherever it appears.

The Django settings probe runs in the app's interpreter, where the toolkit is not installed, and
loads this file by its path: it must keep to the standard library and to syntax older Pythons accept.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

MASK = "****"
# Redis URL schemes: a userinfo without ':' is a password (AUTH with one word), not a user name.
REDIS_SCHEMES = frozenset({"redis", "rediss", "unix", "valkey", "valkeys"})

# Names of keys whose value is a secret: "password", "auth_password", "PGPASSWORD", "requirepass",
# "REDISCLI_AUTH", "SECRET_KEY", "token" (not "password_encryption", "auth_type" or "passwd FROM").
# "pass" and "pwd" count only as whole words or after a separator ("db_pass", not "bypass", "OLDPWD").
_SENSITIVE = (
    r"(?:[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|requirepass|masterauth|rediscli_auth"
    r"|secret|secret_key|token|api_key)|(?:[A-Za-z0-9.-]*[_.-])?(?:pass|pwd))"
)
_SECRET_KEY = re.compile(r"\A" + _SENSITIVE + r"\Z", re.IGNORECASE)

_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]*)://")
# A list of URLs in one string (Django splits LOCATION on ',' and ';'): the next URL starts a new one.
_NEXT_URL = re.compile(r"[,;]\s*[A-Za-z][A-Za-z0-9+.-]*://")
# One value: quoted and unquoted parts side by side, as a shell word ('it'"'"'s') or a libpq value
# ('it\'s', 'it''s'); a quote left open runs to the end. Backslash escapes inside single quotes are
# libpq's: read as a shell word they can only make the masked part longer. A conninfo inside an SQL
# literal doubles its quotes (password=''a b''): that is one value too.
_WORD = (
    r"""(?:''(?:[^']|'(?!'))*(?:''|\Z)|'(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z)|\\.|[^\s'"\\])+"""
)
# key=value: in a URL query (after ? or &) the value ends at '&'; elsewhere it is one value (_WORD).
_QUERY_KV = re.compile(r"(?<=[?&;])(" + _SENSITIVE + r"=)[^&\s]*", re.IGNORECASE)
_KV = re.compile(
    r"(?<![A-Za-z0-9_?&])(" + _SENSITIVE + r"\s*=\s*)(" + _WORD + r")",
    re.IGNORECASE,
)
# 'PASSWORD': 'x' and "password": "x" (a dict's repr or JSON in an error message).
_MAPPING = re.compile(
    r"""((['"])""" + _SENSITIVE + r"""\2\s*:\s*)('(?:[^'\\]|\\.)*(?:'|\Z)|"(?:[^"\\]|\\.)*(?:"|\Z))""",
    re.IGNORECASE,
)
# SQL: [ENCRYPTED] PASSWORD 'x''y' | E'x\'y' | $q$x$q$; an unterminated literal is masked to the end.
_SQL_PASSWORD = re.compile(
    r"(\bPASSWORD\s+)(?:[Ee]'(?:[^'\\]|\\.|'')*(?:'|\Z)|'(?:[^']|'')*(?:'|\Z)|(\$\w*\$)(?:.*?\2|.*\Z))",
    re.IGNORECASE | re.DOTALL,
)
# redis-cli -a PW, --pass PW, --pass=PW; -u URL is a URL (masked above).
_CLI_PASS = re.compile(r"(?<!\S)(-a|--pass)(\s+|=)(" + _WORD + r")")
# ACL SETUSER name ... >password <password #hash !hash: every password rule of the statement.
_ACL_SETUSER = re.compile(r"(\bSETUSER\s+)([^\n]*)", re.IGNORECASE)
_ACL_RULE = re.compile(r"(?<!\S)([<>#!])\S+")


def _mask_userinfo(scheme: str, userinfo: str, mask: str) -> str:
    if ":" in userinfo:
        user, password = userinfo.split(":", 1)
        return user + ":" + (mask if password else "")
    if scheme.lower() in REDIS_SCHEMES and userinfo:
        return mask
    return userinfo


def mask_urls(text: str, mask: str = MASK) -> str:
    """Mask the password in every URL's userinfo in ``text``.

    >>> mask_urls("postgresql://app:p@ss/w?rd@db1:5432/app and redis://s3cret@cache1")
    'postgresql://app:****@db1:5432/app and redis://****@cache1'
    >>> mask_urls("redis://:a,b@r1:6379/0,redis://:c;d@r2:6379/0", "***")
    'redis://:***@r1:6379/0,redis://:***@r2:6379/0'
    """
    out: list[str] = []
    pos = 0
    while True:
        m = _SCHEME.search(text, pos)
        if m is None:
            break
        start = m.end()
        end = len(text)
        space = re.search(r"\s", text[start:])
        if space is not None:
            end = start + space.start()
        nxt = _NEXT_URL.search(text, start, end)
        if nxt is not None:
            end = nxt.start()
        segment = text[start:end]
        at = segment.rfind("@")
        out.append(text[pos:start])
        if at >= 0:
            out.append(_mask_userinfo(m.group(1), segment[:at], mask) + segment[at:])
        else:
            out.append(segment)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def mask_text(text: str, secrets: Collection[str] = (), mask: str = MASK) -> str:
    """Mask URL passwords, password pairs, SQL and CLI passwords, and every known secret in ``text``.

    >>> mask_text("postgresql://app:s3cret@127.0.0.1/app host=x password='a b' port=1")
    'postgresql://app:****@127.0.0.1/app host=x password=**** port=1'
    >>> mask_text("ALTER ROLE app PASSWORD 'it''s'; PGPASSWORD='x y' psql -h db")
    "ALTER ROLE app PASSWORD '****'; PGPASSWORD=**** psql -h db"
    >>> mask_text("token is abc123", ["abc123"])
    'token is ****'
    """
    text = mask_urls(text, mask)
    text = _SQL_PASSWORD.sub(lambda m: m.group(1) + "'" + mask + "'", text)
    text = _QUERY_KV.sub(lambda m: m.group(1) + mask, text)
    text = _KV.sub(lambda m: m.group(1) + mask, text)
    text = _MAPPING.sub(lambda m: m.group(1) + m.group(3)[0] + mask + m.group(3)[0], text)
    text = _CLI_PASS.sub(lambda m: m.group(1) + m.group(2) + mask, text)
    text = _ACL_SETUSER.sub(
        lambda m: m.group(1) + _ACL_RULE.sub(lambda r: r.group(1) + mask, m.group(2)), text
    )
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, mask)
    return text


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret.

    >>> [is_secret_key(k) for k in ("auth_password", "PASSWORD", "password_encryption", "auth_type")]
    [True, True, False, False]
    """
    return _SECRET_KEY.match(key) is not None


def mask_tree(value: Any, secrets: Collection[str] = (), mask: str = MASK) -> Any:
    """A copy of ``value`` (JSON-like) with secret-named keys' values and secrets in text masked.

    >>> mask_tree({"auth_password": "x", "rows": [{"dsn": "redis://u:p@h:1"}], "port": 6432})
    {'auth_password': '****', 'rows': [{'dsn': 'redis://u:****@h:1'}], 'port': 6432}
    """
    if isinstance(value, dict):
        return {
            str(k): mask if is_secret_key(str(k)) and v not in (None, "") else mask_tree(v, secrets, mask)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [mask_tree(v, secrets, mask) for v in value]
    if isinstance(value, str):
        return mask_text(value, secrets, mask)
    return value


def split_locations(location: str, mask: str = MASK) -> list[str]:
    """A cache LOCATION string, masked first, then split on ',' and ';' as Django's backends do.

    Masking first keeps a password that holds ',' or ';' from being cut in two halves that no
    longer look like a URL.

    >>> split_locations("redis://:p,w@r1:6379/0; redis://r2:6379/0", "***")
    ['redis://:***@r1:6379/0', 'redis://r2:6379/0']
    """
    return [item.strip() for item in re.split("[;,]", mask_text(location, (), mask)) if item.strip()]

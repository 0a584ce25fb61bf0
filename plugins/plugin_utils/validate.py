# Generated from toolkit/domain/validate.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/validate.py and run `python scripts/generate_plugin_utils.py`.
"""One set of validators for every role input that lands in a file, and the table naming them.

A value written into pgbouncer.ini, the auth_file, an init script, a unit, redis.conf, the ACL file or
the demo's config can add a line of its own: ``DISCARD ALL\\nauth_type = trust``. Every such input is
checked here before anything changes, by the roles (filter ``toolkit_check_inputs``) and by the CLI
(:func:`toolkit.domain.inventory.topology_from_inventory`):

- no control characters at all (C0, DEL, C1, U+2028, U+2029), not only newlines;
- patterns matched whole (``re.fullmatch``): ``$`` would accept a trailing newline;
- addresses parsed as addresses (:mod:`ipaddress`) or RFC 1123 host names, lists element by element,
  so a wildcard anywhere in a list is still a wildcard;
- enums for modes and policies; Redis ACL rules token by token against the ACL grammar;
- numbers as numbers: no booleans, NaN, infinities or non-ASCII digits, within the server's range.

Every failure is an :class:`InventoryError` naming the variable, the host and what is allowed; the
value is shown only for variables that are not secrets.
"""

from __future__ import annotations

import ipaddress
import math
import re
import socket
from collections.abc import Callable, Mapping
from typing import Any

from ansible_collections.pgbouncer_django.toolkit.plugins.plugin_utils.errors import InventoryError

INT32_MAX = 2_147_483_647
# PostgreSQL's MAX_BACKENDS (2^18 - 1): max_connections and its reserves cannot exceed it.
PG_MAX_BACKENDS = 262_143


class Invalid(ValueError):
    """One value broke a rule: ``why`` says what is allowed; ``got`` is the offending piece."""

    def __init__(self, why: str, got: Any = None, show: bool = True) -> None:
        super().__init__(why)
        self.why = why
        self.got = got
        self.show = show


class _Deferred:
    """A value still written as a template (``ansible-inventory`` does not render): checked in the play."""


DEFERRED = _Deferred()
Check = Callable[[Any], None]


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return code < 0x20 or 0x7F <= code <= 0x9F or code in (0x2028, 0x2029)


def text(value: Any, *, empty: bool = False, max_len: int = 1024, show: bool = True) -> str:
    """A string of one line: no control character of any kind, at most ``max_len`` characters."""
    if not isinstance(value, str):
        raise Invalid("must be a string", value, show)
    if not value and not empty:
        raise Invalid("must not be empty", value, show)
    bad = next((ch for ch in value if _is_control(ch)), None)
    if bad is not None:
        raise Invalid(
            f"contains the control character U+{ord(bad):04X}; give one line of printable text", value, show
        )
    if len(value) > max_len:
        raise Invalid(f"is longer than {max_len} characters", value[:40] + "...", show)
    return value


def text_line(value: Any) -> None:
    """Free text written on one line of a config file (may be empty)."""
    if value is not DEFERRED:
        text(value, empty=True)


def secret(value: Any) -> None:
    """A password or seed: any printable text of one line; never shown in a message."""
    if value is not DEFERRED:
        text(value, max_len=4096, show=False)


def optional_secret(value: Any) -> None:
    """A secret that may be empty."""
    if value != "":
        secret(value)


def matching(pattern: str, allowed: str, *, empty: bool = False) -> Check:
    """A string matched whole by ``pattern`` (``re.fullmatch``; ``allowed`` says it in words)."""
    regex = re.compile(pattern)

    def check(value: Any) -> None:
        if value is DEFERRED or (empty and value == ""):
            return
        if not regex.fullmatch(text(value)):
            raise Invalid(f"must be {allowed}", value)

    return check


def one_of(*choices: str) -> Check:
    """One of ``choices`` exactly (a YAML ``no`` unquoted is a boolean, not the string)."""

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        if not isinstance(value, str) or value not in choices:
            raise Invalid(f"must be one of {', '.join(choices)}", value)

    return check


def boolean(value: Any) -> None:
    """A YAML boolean (a string such as 'false' would be true in a template)."""
    if value is not DEFERRED and not isinstance(value, bool):
        raise Invalid("must be true or false (a boolean; with -e pass JSON: -e '{\"name\": false}')", value)


_ASCII_INT = re.compile(r"-?[0-9]{1,19}")
_ASCII_NUMBER = re.compile(r"-?[0-9]{1,19}(\.[0-9]{1,19})?")


def to_int(value: Any) -> int:
    """An integer from an int or a string of ASCII digits; never a bool, a float or other digits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _ASCII_INT.fullmatch(value):  # never strip: a template writes it as is
        return int(value)
    raise Invalid("must be an integer", value)


def to_number(value: Any) -> float:
    """A finite number from an int, a float or a string of ASCII digits with an optional fraction."""
    if isinstance(value, bool):
        raise Invalid("must be a number", value)
    if isinstance(value, str) and _ASCII_NUMBER.fullmatch(value):
        value = float(value)
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Invalid("must be a finite number", value)
    return float(value)


def bounded(number: int, low: int, high: int) -> int:
    """``number`` when ``low <= number <= high``."""
    if number < low:
        raise Invalid(f"must be at least {low}", number)
    if number > high:
        raise Invalid(f"must be at most {high}", number)
    return number


def integer(low: int = 0, high: int = INT32_MAX, *, empty: bool = False) -> Check:
    """An integer in ``low..high`` (an int, or a string of ASCII digits as ``-e`` gives)."""

    def check(value: Any) -> None:
        if value is DEFERRED or (empty and value == ""):
            return
        try:
            n = to_int(value)
        except Invalid:
            raise Invalid(f"must be an integer from {low} to {high} (ASCII digits)", value) from None
        bounded(n, low, high)

    return check


def number(low: float, high: float) -> Check:
    """A finite number above ``low`` and at most ``high``."""

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        n = to_number(value)
        if not low < n <= high:
            raise Invalid(f"must be in ({low}, {high}]", value)

    return check


port = integer(1, 65535)

_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def host_name(value: str) -> bool:
    """An RFC 1123 host name that no resolver reads as a number (``0``, ``0x7f.1`` are addresses)."""
    if len(value) > 253 or not all(_LABEL.fullmatch(label) for label in value.removesuffix(".").split(".")):
        return False
    try:
        socket.inet_aton(value)  # pure parsing: inet_aton accepts "0", "127.1", "0x7f.0.0.1"
    except OSError:
        return True
    return False


def parse_address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address ``value`` is, None for a host name; Invalid for anything else."""
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        pass
    if host_name(value):
        return None
    raise Invalid("must be an IP address or a host name (RFC 1123)", value)


def is_wildcard(element: str) -> bool:
    """An address that listens on every interface (``*``, ``0.0.0.0``, ``::``, Redis's ``-::*``)."""
    bare = element.removeprefix("-")
    if bare in ("*", "::*"):
        return True
    try:
        ip = ipaddress.ip_address(bare)
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_unspecified or bool(mapped and mapped.is_unspecified)


def address(value: Any) -> None:
    """One IP address or host name."""
    if value is not DEFERRED:
        parse_address(text(value))


def address_list(separator: str, *, optional_prefix: bool = False) -> Check:
    """Addresses joined by ``separator``, each an IP address, a host name or ``*``.

    Redis marks an address it may skip with ``-`` (``optional_prefix``) and accepts ``::*``.
    """

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        elements = [e.strip() for e in text(value).split(separator)]
        for element in elements:
            bare = element.removeprefix("-") if optional_prefix else element
            if bare == "*" or (optional_prefix and bare == "::*"):
                continue
            if not bare:
                raise Invalid(f"has an empty entry; separate addresses with {separator!r}", value)
            parse_address(bare)

    return check


def wildcards(value: Any, separator: str) -> list[str]:
    """The elements of an address list that are wildcards (``[]`` for a template)."""
    if not isinstance(value, str):
        return []
    return [e.strip() for e in value.split(separator) if is_wildcard(e.strip())]


def list_of(item: Check, *, empty: bool = False, unique: bool = True) -> Check:
    """A list whose every element passes ``item``."""

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        if not isinstance(value, list) or (not value and not empty):
            raise Invalid("must be a list" if empty else "must be a non-empty list", value)
        for i, element in enumerate(value):
            try:
                item(element)
            except Invalid as exc:
                raise Invalid(f"entry {i + 1} {exc.why}", exc.got, exc.show) from None
        if unique and len({repr(v) for v in value}) != len(value):
            raise Invalid("has duplicate entries", value)

    return check


def record(fields: Mapping[str, Check], required: tuple[str, ...]) -> Check:
    """A mapping with only ``fields`` (each checked), the ``required`` ones present.

    Messages name the field, never the whole mapping: a secret field (checked by :func:`secret`)
    never shows its value.
    """

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        if not isinstance(value, Mapping):
            raise Invalid(f"must be a mapping with {', '.join(fields)}", None, False)
        unknown = sorted(str(k) for k in value if k not in fields)
        if unknown:
            raise Invalid(
                f"has the unknown key(s) {', '.join(unknown)}; allowed: {', '.join(fields)}", None, False
            )
        missing = [f for f in required if f not in value]
        if missing:
            raise Invalid(f"needs {', '.join(missing)}", None, False)
        for name, field in fields.items():
            if name in value:
                try:
                    field(value[name])
                except Invalid as exc:
                    raise Invalid(f"{name} {exc.why}", exc.got, exc.show) from None

    return check


def records(
    fields: Mapping[str, Check], required: tuple[str, ...], *, key: str = "name", empty: bool = False
) -> Check:
    """A list of :func:`record` mappings whose ``key`` is unique (non-empty unless ``empty``)."""
    one = record(fields, required)

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        if not isinstance(value, list) or (not value and not empty):
            raise Invalid(
                "must be a list of mappings" if empty else "must be a non-empty list of mappings", None, False
            )
        seen: set[str] = set()
        for i, entry in enumerate(value):
            try:
                one(entry)
            except Invalid as exc:
                raise Invalid(f"entry {i + 1} {exc.why}", exc.got, exc.show) from None
            name = entry.get(key)
            if isinstance(name, str):
                if name in seen:
                    raise Invalid(f"entry {i + 1} repeats the {key} {name!r}", None, False)
                seen.add(name)

    return check


def mapping_of(key: Check, item: Check) -> Check:
    """A mapping whose keys pass ``key`` and values pass ``item``."""

    def check(value: Any) -> None:
        if value is DEFERRED:
            return
        if not isinstance(value, Mapping):
            raise Invalid("must be a mapping", value)
        for k, v in value.items():
            key(k)
            try:
                item(v)
            except Invalid as exc:
                raise Invalid(f"{k!r} {exc.why}", exc.got, exc.show) from None

    return check


def deferred(value: Any) -> Any:
    """``value`` with every string still written as a Jinja template replaced by :data:`DEFERRED`."""
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return DEFERRED
    if isinstance(value, list):
        return [deferred(v) for v in value]
    if isinstance(value, Mapping):
        return {k: deferred(v) for k, v in value.items()}
    return value


def show(got: Any) -> str:
    """A value for a message: repr (control characters escaped), at most 80 characters."""
    shown = repr(got)
    return shown if len(shown) <= 80 else shown[:77] + "..."


def run(variable: str, host: str | None, check: Check, value: Any, *, is_secret: bool = False) -> None:
    """Apply ``check``; on failure raise InventoryError naming variable, host and the rule."""
    try:
        check(value)
    except Invalid as exc:
        got = "" if is_secret or not exc.show else f", got {show(exc.got)}"
        raise InventoryError(variable, host, f"{exc.why}{got}") from None

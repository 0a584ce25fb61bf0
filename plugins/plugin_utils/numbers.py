# Generated from toolkit/domain/numbers.py by scripts/generate_plugin_utils.py; do not edit.
# Change toolkit/domain/numbers.py and run `python scripts/generate_plugin_utils.py`.
"""The one coercion of a live value to an integer: SHOW rows, SHOW CONFIG, INFO, pg_settings, CLIENT LIST.

Drivers hand these over as ints, Decimals (PgBouncer's SHOW STATS columns are numeric) or text
(pg_settings' ``setting``, SHOW CONFIG, redis-py's parsed INFO, CLIENT LIST fields). A value that
is not an integer (missing, empty, a word, a fraction) gives ``default``: 0 where a count is summed,
None where "not set" must differ from 0. Inventory input is not coerced here:
:func:`toolkit.domain.validate.to_int` refuses bad values instead.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import overload

_INTEGER = re.compile(r"-?[0-9]{1,19}")


@overload
def as_int(value: object) -> int: ...
@overload
def as_int(value: object, default: int) -> int: ...
@overload
def as_int(value: object, default: None) -> int | None: ...


def as_int(value: object, default: int | None = 0) -> int | None:
    """``value`` as an int (an int, an integral float, ASCII digits with an optional sign), else ``default``.

    >>> as_int("42"), as_int(" 7 "), as_int(3), as_int(2.0), as_int("-1")
    (42, 7, 3, 2, -1)
    >>> as_int(None), as_int(""), as_int("1.5"), as_int("١٢"), as_int(True), as_int("n/a", None)
    (0, 0, 0, 0, 0, None)
    """
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else default
    if isinstance(value, Decimal):  # psycopg's type for PgBouncer's numeric columns (SHOW STATS)
        return int(value) if value.is_finite() and value == value.to_integral_value() else default
    if isinstance(value, str | bytes):
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        text = text.strip()
        return int(text) if _INTEGER.fullmatch(text) else default
    return default

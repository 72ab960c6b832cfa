"""What a record can hold: the checks made on numbers and text at the call, and the safe forms.

Airtable stores numbers as IEEE doubles (JavaScript numbers) and text as
UTF-8. A value outside that (``nan``, ``inf``, ``2**1100``, a lone surrogate
such as ``"\\ud83d"``) cannot be serialised or read back, so it is refused where
the caller passed it, or, for free text, made safe:

- :func:`check_number`: a finite ``int``/``float`` (not ``bool``) of at most
  :data:`MAX_NUMBER` in magnitude, else ``InvalidValueError``;
- :func:`safe_text`: text with every lone surrogate replaced by U+FFFD (a
  surrogate *pair* becomes the character it encodes);
- :func:`has_surrogates`: for IDs, which are refused instead of repaired;
- :func:`whole`: the form a roll-up writes (``3.0`` -> ``3``), never raising;
- :func:`unsendable_fields`: the fields of a record that cannot be sent as
  JSON at all (what the delivery engine sets aside instead of retrying forever).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Final

from .errors import InvalidValueError

__all__ = ["MAX_NUMBER", "check_number", "has_surrogates", "safe_text", "unsendable_fields", "whole"]

#: The largest magnitude jobtrace writes to a number field: 2**53 - 1, the largest
#: integer a double (what Airtable stores) holds exactly. Beyond it counters stop being exact.
MAX_NUMBER: Final = 2**53 - 1

_SURROGATE = re.compile("[\ud800-\udfff]")


def check_number(value: object, what: str) -> int | float:
    """Return ``value`` if a number field can hold it; else raise ``InvalidValueError`` naming ``what``."""
    if type(value) is bool or not isinstance(value, (int, float)):
        raise InvalidValueError(f"{what} needs a number, got {type(value).__name__} {value!r}")
    # NaN fails every comparison, infinities and huge ints fail the bound: one test for all three.
    if not -MAX_NUMBER <= value <= MAX_NUMBER:
        if isinstance(value, float) and value != value:
            why = "NaN is not a number Airtable can store"
        elif isinstance(value, float) and value in (float("inf"), float("-inf")):
            why = "infinity is not a number Airtable can store"
        else:
            why = f"its magnitude is over {MAX_NUMBER:,} (2**53 - 1), the most a number field holds exactly"
        shown = repr(value) if isinstance(value, float) else f"an integer of {value.bit_length()} bits"
        raise InvalidValueError(f"{what} got {shown}: {why}")
    return value


def has_surrogates(text: str) -> bool:
    """True when ``text`` holds a surrogate code point (it then cannot be encoded as UTF-8)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


def safe_text(text: str) -> str:
    """``text`` as UTF-8 can carry it: surrogate pairs joined, lone surrogates replaced by U+FFFD."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def whole(value: int | float) -> int | float:
    """A number as a roll-up writes it: an integral float as an ``int``; never raises (``inf`` stays)."""
    if type(value) is float and value.is_integer():
        return int(value)
    return value


def unsendable_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """The fields that cannot be sent as JSON (``NaN``, a set, ...), each with the reason; empty if none."""
    try:
        json.dumps(fields, allow_nan=False)
        return {}
    except (TypeError, ValueError, RecursionError):
        pass
    found: dict[str, str] = {}
    for name, value in fields.items():
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError, RecursionError) as exc:
            found[name] = f"{type(exc).__name__}: {exc}"
    if not found:  # a key that is not a string
        found.update({str(k): "field name is not a string" for k in fields if not isinstance(k, str)})
    return found

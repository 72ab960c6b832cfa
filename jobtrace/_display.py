"""How the CLI shows a cell: by the field's type in the base's metadata.

Computed values arrive in Airtable's JSON form: a formula over an empty End
Time gives ``{"specialValue": "NaN"}``, a broken one ``{"error": "#ERROR!"}``
(shown blank); a percent is a fraction (``0.9166`` -> ``91.7%``); a
``DATETIME_DIFF(..., 'seconds')`` or duration field is a number of seconds
(``754`` -> ``12m34s``). Text goes through :func:`~jobtrace._text.visible`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from ._text import visible

__all__ = ["CellFormatter", "human_duration", "parse_airtable_time"]

_DIFF_UNIT = re.compile(r"DATETIME_DIFF\s*\(.*,\s*['\"](seconds|minutes|hours|days)['\"]\s*\)\s*$", re.I | re.S)
_UNIT_SECONDS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}


def parse_airtable_time(value: Any) -> datetime | None:
    """A dateTime cell as Airtable sends it (``2025-10-05T21:02:47.000Z``), aware; None if it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=timezone.utc)


def human_duration(seconds: float) -> str:
    """``0.25s``, ``4.2s``, ``42s``, ``12m34s``, ``3h05m``, ``2d04h``."""
    if 0 < seconds < 1:
        return f"{seconds:.2f}s"
    if 0 < seconds < 10 and not float(seconds).is_integer():
        return f"{seconds:.1f}s"
    s = max(int(seconds), 0)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


class CellFormatter:
    """Formats the cells of one table, knowing its fields from the metadata API's shape."""

    def __init__(self, table: Mapping[str, Any] | None, escapes: bool = False) -> None:
        self._escapes = escapes
        # field name -> (kind, option): kind in percent, duration, currency, number, other
        self._kinds: dict[str, tuple[str, Any]] = {}
        for spec in (table or {}).get("fields", []):
            self._kinds[spec["name"]] = self._kind(spec)

    @staticmethod
    def _kind(spec: Mapping[str, Any]) -> tuple[str, Any]:
        options = spec.get("options") or {}
        ftype = spec["type"]
        if ftype == "formula":
            match = _DIFF_UNIT.search(str(options.get("formula", "")))
            if match:
                return "duration", _UNIT_SECONDS[match.group(1).lower()]
        if ftype in ("formula", "rollup", "lookup", "multipleLookupValues"):
            result = options.get("result") or {}
            ftype, options = result.get("type", ftype), result.get("options") or {}
        if ftype == "percent":
            return "percent", int(options.get("precision", 0))
        if ftype == "duration":
            return "duration", 1
        if ftype == "currency":
            return "currency", (options.get("symbol", ""), int(options.get("precision", 2)))
        return "other", None

    def __call__(self, name: str, value: Any) -> str:
        """The cell as text (never raw control characters); blank for empty, NaN and errors."""
        if value is None:
            return ""
        if isinstance(value, Mapping) and ("specialValue" in value or "error" in value):
            return ""
        if isinstance(value, float) and not math.isfinite(value):
            return ""
        kind, option = self._kinds.get(name, ("other", None))
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if kind == "percent":
                return f"{value * 100:.{option}f}%"
            if kind == "duration":
                return human_duration(value * option)
            if kind == "currency":
                symbol, precision = option
                return f"{symbol}{value:,.{precision}f}"
            if isinstance(value, float) and value.is_integer():
                return str(int(value))
            return str(value)
        if isinstance(value, list):
            return ", ".join(self(name, v) for v in value)
        if isinstance(value, Mapping) and "name" in value:
            return visible(str(value["name"]), escapes=self._escapes)
        return visible(str(value), escapes=self._escapes)

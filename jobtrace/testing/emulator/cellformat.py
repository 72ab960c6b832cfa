"""``cellFormat=string``: how Airtable renders cell values as display text.

Only the common cases are modelled: numbers with their precision, currency
and percent, dates and datetimes in the field's date/time format (moment.js
tokens) and time zone, checkboxes, lists joined with ", ".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .formula import parse_datetime


def resolve_time_zone(name: str | None) -> tzinfo:
    """A tzinfo for an IANA name (``utc`` too); raises ``ValueError`` if unknown."""
    if name is None or name.lower() in ("utc", "gmt", "etc/utc", "client"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r}") from None


_MOMENT = ("YYYY", "MMMM", "MMM", "MM", "M", "DD", "D", "HH", "H", "hh", "h", "mm", "ss", "A", "a",
           "LL", "l")  # fmt: skip
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")  # fmt: skip


def format_moment(dt: datetime, fmt: str) -> str:
    """Format ``dt`` with a moment.js-style format such as ``M/D/YYYY`` or ``h:mma``."""
    out, i = [], 0
    while i < len(fmt):
        for tok in _MOMENT:
            if fmt.startswith(tok, i):
                out.append(_moment_token(dt, tok))
                i += len(tok)
                break
        else:
            out.append(fmt[i])
            i += 1
    return "".join(out)


def _moment_token(dt: datetime, tok: str) -> str:
    hour12 = dt.hour % 12 or 12
    return {
        "YYYY": f"{dt.year:04d}", "MMMM": _MONTHS[dt.month - 1], "MMM": _MONTHS[dt.month - 1][:3],
        "MM": f"{dt.month:02d}", "M": str(dt.month), "DD": f"{dt.day:02d}", "D": str(dt.day),
        "HH": f"{dt.hour:02d}", "H": str(dt.hour), "hh": f"{hour12:02d}", "h": str(hour12),
        "mm": f"{dt.minute:02d}", "ss": f"{dt.second:02d}", "A": "AM" if dt.hour < 12 else "PM",
        "a": "am" if dt.hour < 12 else "pm", "LL": f"{_MONTHS[dt.month - 1]} {dt.day}, {dt.year}",
        "l": f"{dt.month}/{dt.day}/{dt.year}",
    }[tok]  # fmt: skip


def _number(value: float, precision: int) -> str:
    return f"{value:,.{precision}f}" if abs(value) >= 1000 else f"{value:.{precision}f}"


def to_display(value: Any, ftype: str, options: Mapping[str, Any], tz: tzinfo) -> str:
    """Display text of an API-form ``value`` of a field of type ``ftype``."""
    if isinstance(value, list):
        return ", ".join(to_display(v, ftype, options, tz) for v in value)
    if isinstance(value, dict):
        return str(value.get("name") or value.get("filename") or value.get("text") or "")
    if ftype == "formula" and isinstance(options.get("result"), Mapping):
        result = options["result"]
        return to_display(value, result.get("type", ""), result.get("options") or {}, tz)
    if ftype in ("createdTime", "lastModifiedTime") and isinstance(options.get("result"), Mapping):
        result = options["result"]
        return to_display(value, result.get("type", "dateTime"), result.get("options") or {}, tz)
    if ftype == "checkbox":
        return "checked" if value else ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and math.isnan(value):
            return "NaN"
        precision = int(options.get("precision", 0 if isinstance(value, int) else 1))
        if ftype == "percent":
            return _number(value * 100, precision) + "%"
        if ftype == "currency":
            return str(options.get("symbol", "$")) + _number(value, precision)
        if ftype in ("number",):
            return _number(value, precision)
        return str(value)
    if isinstance(value, str) and ftype in ("dateTime", "date"):
        try:
            dt = parse_datetime(value)
        except ValueError:
            return value
        date_fmt = (options.get("dateFormat") or {}).get("format", "YYYY-MM-DD")
        if ftype == "date":
            return format_moment(dt, date_fmt)
        field_tz = options.get("timeZone")
        local = dt.astimezone(tz if field_tz in (None, "client") else resolve_time_zone(field_tz))
        time_fmt = (options.get("timeFormat") or {}).get("format", "HH:mm")
        return format_moment(local, date_fmt) + " " + format_moment(local, time_fmt)
    return str(value)

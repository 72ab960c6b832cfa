"""System Notes: timestamped lines appended to a record's notes, kept within Airtable's size.

A leaf module (it imports only :mod:`jobtrace.changes` and :mod:`jobtrace.values`),
so sinks that write notes themselves (closing a dead run, ``jobtrace close``)
format them exactly as the records do.
"""

from __future__ import annotations

from typing import Final

from .changes import utc_iso
from .values import safe_text

__all__ = ["NOTES_LIMIT", "append_note"]

#: The most characters jobtrace keeps in a notes or errors field (Airtable's long text holds 100,000).
NOTES_LIMIT: Final = 100_000
_TRIM_MARKER = "[earlier notes trimmed]\n"


def append_note(notes: str, text: str, at: float | None = None) -> str:
    """``notes`` with a timestamped line ``text`` added, never longer than :data:`NOTES_LIMIT`.

    When the result would be too long, whole lines are dropped from the front
    and a marker says so.
    """
    line = f"[{utc_iso(at)}] {safe_text(text)}"
    combined = f"{notes}\n{line}" if notes else line
    if len(combined) <= NOTES_LIMIT:
        return combined
    budget = NOTES_LIMIT - len(_TRIM_MARKER)
    body = combined[len(combined) - budget :]
    newline = body.find("\n")
    if 0 <= newline < len(body) - 1:
        body = body[newline + 1 :]
    return _TRIM_MARKER + body

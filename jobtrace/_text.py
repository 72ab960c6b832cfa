"""Text from records made safe to show: control characters rendered visibly, never raw.

Scraped content reaches System Notes and Errors; printed raw, an escape sequence
recolours or rewrites the operator's terminal and a BEL rings it. Every CLI output
goes through :func:`visible`: C0 controls become their Unicode control pictures
(ESC -> ``␛``, BEL -> ``␇``, TAB -> ``␉``), DEL ``␡``, and C1 controls, bidi
overrides/isolates and line/paragraph separators become ``<U+XXXX>``.
"""

from __future__ import annotations

import re
from typing import Any, TextIO

__all__ = ["VisibleWriter", "visible"]

_C0_OR_C1 = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_C0_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _picture(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"<U+{code:04X}>"


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, keep_newlines: bool = False, escapes: bool = False) -> str:
    """``text`` with every control character shown as a visible stand-in (newlines kept if asked).

    The stand-ins are Unicode control pictures (``␛``), or with ``escapes=True`` Python-style
    escapes (``\\x1b``): for pages whose fonts may lack the pictures (the HTML report).
    """
    pattern = _C0_BUT_NEWLINE if keep_newlines else _C0_OR_C1
    return pattern.sub(_escape if escapes else _picture, text)


class VisibleWriter:
    """A text stream in front of another that lets newlines through and shows every other control character."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(visible(text, keep_newlines=True))
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

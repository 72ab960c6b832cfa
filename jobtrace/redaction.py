"""Secrets never reach error text: :func:`redact` and the filter on jobtrace's logger.

The Airtable sink registers its API token here when it is built. Every
error text jobtrace logs or keeps (``diagnostics()``, ``SinkError``, the
journal's record of undeliverable rows) goes through :func:`redact`, and a
filter on the ``jobtrace`` logger redacts each record's message and
traceback, so even an exception from a library that quotes the request's
headers (as ``requests`` does for an invalid header) cannot leak the token.
"""

from __future__ import annotations

import logging
import threading

__all__ = ["REDACTED", "redact", "register_secret"]

REDACTED = "[redacted]"
#: Shorter strings are not registered: replacing them would garble ordinary text.
_MIN_LENGTH = 6

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def register_secret(secret: str) -> None:
    """Redact ``secret`` (and its ``repr`` form) from every error text from now on."""
    global _secrets
    forms = {secret, repr(secret)[1:-1]}
    with _lock:
        _secrets = tuple(sorted({*_secrets, *(f for f in forms if len(f) >= _MIN_LENGTH)}, key=len, reverse=True))


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``[redacted]``."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


class _RedactingFilter(logging.Filter):
    """Redacts the message and traceback of each record of the ``jobtrace`` logger."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not _secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the handler's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


logging.getLogger("jobtrace").addFilter(_RedactingFilter())

"""The Airtable sink's settings checked at construction: the API token and the endpoint URL.

A token is stripped of surrounding whitespace (a secret file's trailing
newline) and must then be something an HTTP header can carry; otherwise
``ConfigurationError`` says so without showing it. A valid token is
registered for redaction (:mod:`jobtrace.redaction`).
"""

from __future__ import annotations

import re

from ...errors import ConfigurationError
from ...redaction import register_secret

__all__ = ["clean_api_key"]

# Visible ASCII: what a personal access token is made of, and always a valid header value.
_TOKEN = re.compile(r"[\x21-\x7e]+")


def clean_api_key(api_key: object) -> str:
    """The token without surrounding whitespace; ``ConfigurationError`` (never quoting it) if it cannot work."""
    if not isinstance(api_key, str):
        raise ConfigurationError(f"the Airtable API key must be a string, got {type(api_key).__name__}")
    key = api_key.strip()
    if not key:
        raise ConfigurationError("the Airtable API key is empty: set AIRTABLE_API_KEY (a personal access token)")
    if _TOKEN.fullmatch(key) is None:
        what = sorted({_kind(c) for c in key if not ("\x21" <= c <= "\x7e")})
        raise ConfigurationError(
            f"the Airtable API key ({len(key)} characters, not shown) contains {' and '.join(what)}, so it can "
            f"never be sent in an HTTP header: copy the token again into AIRTABLE_API_KEY"
        )
    register_secret(key)
    return key


def _kind(char: str) -> str:
    if char in "\r\n":
        return "a line break"
    if char.isspace():
        return "whitespace"
    if char < " " or char == "\x7f":
        return "a control character"
    return "a non-ASCII character"

"""The Airtable sink's settings checked at construction: the API token and the endpoint URL.

A token is stripped of surrounding whitespace (a secret file's trailing
newline) and must then be something an HTTP header can carry; otherwise
``ConfigurationError`` says so without showing it. A valid token is
registered for redaction (:mod:`jobtrace.redaction`).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from ...errors import ConfigurationError
from ...redaction import register_secret

__all__ = ["check_endpoint_url", "clean_api_key"]

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


def check_endpoint_url(url: str) -> str:
    """``url`` without a trailing ``/`` if it can be an API endpoint; else ``ConfigurationError`` saying why."""
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError(f"the Airtable endpoint URL must be a non-empty string, got {url!r}")
    cleaned = url.strip().rstrip("/")
    try:
        parts = urlsplit(cleaned)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as exc:
        raise ConfigurationError(f"the Airtable endpoint URL {url!r} is not a URL: {exc}") from None
    example = "e.g. 'https://api.airtable.com', or 'http://127.0.0.1:8765' for `jobtrace emulator`"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"the Airtable endpoint URL {url!r} needs http:// or https:// and a host ({example}); "
            f"check AIRTABLE_ENDPOINT_URL"
        )
    if parts.path.rstrip("/").lower().endswith("/v0"):
        without = cleaned[: -len("/v0")]
        raise ConfigurationError(
            f"the Airtable endpoint URL {url!r} ends in /v0, which pyairtable adds itself (requests would go "
            f"to /v0/v0/...): use {without!r}; check AIRTABLE_ENDPOINT_URL"
        )
    if parts.query or parts.fragment:
        raise ConfigurationError(f"the Airtable endpoint URL {url!r} must not have a query or fragment ({example})")
    return cleaned

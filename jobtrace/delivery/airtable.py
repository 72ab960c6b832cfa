"""AirtableTransport: the one place that knows Airtable's HTTP and its errors (for the engine).

Sends a batch as one ``Table.batch_upsert`` (``performUpsert`` on the key
fields) through pyairtable, without pyairtable's own retries, and says what
Airtable's answer means:

==========================================  =====================================================
Airtable's answer                           outcome
==========================================  =====================================================
2xx                                         :class:`Delivered`
429                                         :class:`RetryAfter` (the 30 s penalty, ``pause_all``)
5xx, a timeout, a dropped connection        :class:`RetryAfter` (0: the engine's backoff)
401, 403, 404 (token, scopes, base, table)  :class:`RetryAfter` (``AUTH_RETRY`` s): fixable without
                                            losing what is pending
400, 413, 422                               :class:`Refused`, naming the field Airtable names
the client raises on the records            :class:`Refused` (no field: the record is set aside)
==========================================  =====================================================

This is the only module that makes pyairtable write calls for delivery; the
AirtableSink (:mod:`jobtrace.sinks.airtable`) and ``jobtrace replay`` send
through an engine over this transport.

The same reading of Airtable's answers serves every other caller (the CLI, the
schema check, the sink's reads, through :mod:`jobtrace.sinks.airtable.reads`):
:func:`airtable_error` turns a failed request into one :class:`AirtableError`,
with a :attr:`~AirtableError.kind` a caller branches on and a message a user
can act on. No message ever quotes a request header, so never the token.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal

try:
    import requests
    from pyairtable import Api, formulas
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("AirtableTransport needs pyairtable: pip install 'jobtrace[airtable]'") from exc

from ..errors import SinkError
from ..redaction import redact
from .transport import Delivered, Outcome, Refused, RetryAfter, Transport

__all__ = [
    "AUTH_RETRY",
    "RATE_LIMIT_PENALTY",
    "AirtableError",
    "AirtableTransport",
    "ErrorKind",
    "airtable_error",
    "busy_error",
    "classify",
    "describe",
    "error_kind",
]

#: How long Airtable refuses a base after a 429, in seconds.
RATE_LIMIT_PENALTY: Final = 30.0
#: How long to wait after 401/403/404 (someone has to fix the token or the base), in seconds.
AUTH_RETRY: Final = 30.0

_FIELD_PATTERNS = (
    re.compile(r'Unknown field name: "(?P<field>.+)"'),
    re.compile(r'Field "(?P<field>.+?)" cannot accept'),
    re.compile(r'field "(?P<field>.+?)"', re.IGNORECASE),
)
_OPTION_PATTERN = re.compile(r'select option "+(?P<value>.*?)"+\s*$')


class AirtableTransport(Transport):
    """Writes records of one Airtable base through a ``pyairtable.Api`` (see ``make_api``)."""

    max_batch = 10  # Airtable's limit per write request

    def __init__(self, api: Api, base_id: str, rate_limit_penalty: float = RATE_LIMIT_PENALTY) -> None:
        self._api = api
        self._base_id = base_id
        self._penalty = rate_limit_penalty

    def send(self, table: str, key_fields: Sequence[str], records: Sequence[Mapping[str, Any]]) -> Outcome:
        try:
            self._api.table(self._base_id, table).batch_upsert(
                [{"fields": dict(r)} for r in records], key_fields=list(key_fields), typecast=False
            )
        except requests.HTTPError as exc:
            return classify(exc, records, self._penalty)
        except requests.RequestException as exc:  # connection refused or dropped, timeouts, a garbled answer
            return RetryAfter(0.0, f"{type(exc).__name__}: {exc}")
        except Exception as exc:
            # Not the network's doing: something in these records the client cannot send (the engine
            # splits the batch and sets the one record aside, so it never holds up the others).
            return Refused(None, f"{type(exc).__name__}: {exc}")
        return Delivered()

    def read(self, table: str, key: Mapping[str, Any]) -> Mapping[str, Any] | None:
        formula = formulas.AND(*(formulas.EQ(formulas.Field(k), v) for k, v in key.items()))
        found = self._api.table(self._base_id, table).first(formula=formula)
        return dict(found["fields"]) if found is not None else None

    def __repr__(self) -> str:
        return f"<AirtableTransport base={self._base_id}>"


#: What went wrong with a request to Airtable, as a caller has to treat it:
#:
#: - ``rate_limited``: 429, the base is refused for :data:`RATE_LIMIT_PENALTY` seconds;
#: - ``unavailable``: 5xx, Airtable's own trouble (retry with backoff);
#: - ``unreachable``: no answer (connection refused or dropped, a timeout; retry with backoff);
#: - ``token``: 401, the token is refused (someone has to fix it: not retried);
#: - ``no_access``: 403/404, no such base or table, or the token lacks the scope or access;
#: - ``rejected``: 400/413/422, the request does not fit the base (a field, a value, a formula);
#: - ``busy``: no request slot of the shared budget freed up in time (nothing was sent).
ErrorKind = Literal["rate_limited", "unavailable", "unreachable", "token", "no_access", "rejected", "busy"]

#: The kinds worth sending the same request again for (after the penalty, or a backoff).
RETRIABLE: Final = frozenset({"rate_limited", "unavailable", "unreachable"})


class AirtableError(SinkError):
    """A request to Airtable failed: what :func:`airtable_error` makes of it.

    ``kind`` (an :data:`ErrorKind`) says how to treat it; ``status`` is the HTTP
    status (0 without an answer); ``reason`` is short (``"HTTP 503"``,
    ``"ConnectionError"``); ``detail`` is Airtable's own error type and message
    (or the exception's name); ``str()`` is one line for a user, with the fix.
    None of them ever holds the token.
    """

    def __init__(self, kind: ErrorKind, message: str, *, status: int = 0, reason: str = "", detail: str = "") -> None:
        super().__init__(redact(message))
        self.kind: ErrorKind = kind
        self.status = status
        self.reason = reason or kind
        self.detail = redact(detail)

    @property
    def retriable(self) -> bool:
        """Whether sending the same request again may succeed without anyone fixing anything."""
        return self.kind in RETRIABLE

    def __repr__(self) -> str:
        return f"AirtableError({self.kind!r}, {str(self)!r}, status={self.status})"


def error_kind(status: int) -> ErrorKind:
    """What an HTTP status from Airtable means (see :data:`ErrorKind`)."""
    if status == 429:
        return "rate_limited"
    if status == 401:
        return "token"
    if status in (403, 404):
        return "no_access"
    if status in (400, 413, 422):
        return "rejected"
    return "unavailable"


def airtable_error(exc: BaseException, base_id: str, endpoint_url: str) -> AirtableError | None:
    """The one reading of a failed pyairtable/requests call: an :class:`AirtableError`, or None if not one.

    ``base_id`` and ``endpoint_url`` only go into the message (where to look).
    """
    if isinstance(exc, AirtableError):
        return exc
    if isinstance(exc, requests.HTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        kind = error_kind(status)
        detail = describe(exc)
        reason = f"HTTP {status}"
        if kind == "token":
            message = f"Airtable refused the API key ({status}): check AIRTABLE_API_KEY"
        elif kind == "no_access":
            message = (
                f"Airtable answered {status} for base {base_id}: check AIRTABLE_BASE_ID and that the token has "
                f"access to the base (run 'jobtrace check')"
            )
        elif kind == "rejected":
            message = (
                f"Airtable rejected the request ({status}: {detail}): the base may not fit the mapping; "
                f"run 'jobtrace check'"
            )
        elif kind == "rate_limited":
            message = (
                f"Airtable's rate limit was hit on base {base_id} (429) and it kept refusing: another client "
                f"uses the base's budget; try again in a minute"
            )
        else:
            message = f"Airtable answered HTTP {status} for base {base_id} ({detail}); try again later"
        return AirtableError(kind, message, status=status, reason=reason, detail=detail)
    if isinstance(exc, requests.RequestException):
        name = type(exc).__name__
        return AirtableError(
            "unreachable", f"cannot reach Airtable at {endpoint_url}: {name}", reason=name, detail=name
        )
    return None


def busy_error(base_id: str, waited: float) -> AirtableError:
    """No slot of the base's shared budget within ``waited`` seconds: nothing was sent."""
    return AirtableError(
        "busy",
        f"no request slot for base {base_id} within {waited:.0f} s: its shared request budget is in use",
        reason="no request slot",
        detail="no request slot within the rate budget",
    )


def classify(
    exc: requests.HTTPError, records: Sequence[Mapping[str, Any]], penalty: float = RATE_LIMIT_PENALTY
) -> RetryAfter | Refused:
    """What an Airtable HTTP error means for a batch (never quoting a header, so never the token)."""
    status = exc.response.status_code if exc.response is not None else 0
    kind = error_kind(status)
    error = f"HTTP {status}: {describe(exc)}"
    if kind == "rate_limited":
        return RetryAfter(penalty, error, pause_all=True)
    if kind == "rejected":
        return Refused(_refused_field(error, records), error)
    if kind in ("token", "no_access"):
        return RetryAfter(AUTH_RETRY, error)
    return RetryAfter(0.0, error)


def describe(exc: requests.HTTPError) -> str:
    """Airtable's error type and message."""
    response = exc.response
    try:
        body = response.json() if response is not None else None
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type', '')}: {error.get('message', '')}".strip(": ")
        if isinstance(error, str):
            return error
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            return f"{errors[0].get('error', '')}: {errors[0].get('message', '')}".strip(": ")
        return json.dumps(body)[:300]
    return response.reason if response is not None and response.reason else type(exc).__name__


def _refused_field(error: str, records: Sequence[Mapping[str, Any]]) -> str | None:
    """The field Airtable's error names, or (for a select option) the one field of a lone record holding that value."""
    names = {name for record in records for name in record}
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(error)
        if match and match.group("field") in names:
            return match.group("field")
    match = _OPTION_PATTERN.search(error)
    if match and len(records) == 1:
        value = match.group("value")
        candidates = [name for name, v in records[0].items() if isinstance(v, str) and v == value]
        if len(candidates) == 1:
            return candidates[0]
    return None

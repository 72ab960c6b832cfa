"""Run IDs: generate, format, parse and validate.

A job run ID is ``YYMMDD-HHMMSS`` (UTC by default), e.g. ``251005-210247``.
A client run ID appends the client ID: ``251005-210247-Guy-Wilson``. Client
IDs may themselves contain ``-``; everything after the second ``-`` is the
client ID.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from .errors import InvalidClientIdError, InvalidRunIdError
from .values import has_surrogates

__all__ = [
    "MAX_CLIENT_ID_LENGTH",
    "RunId",
    "client_run_id",
    "generate_run_id",
    "next_run_id_candidate",
    "parse_run_id",
    "validate_client_id",
    "validate_job_run_id",
]

MAX_CLIENT_ID_LENGTH = 200
_FORMAT = "%y%m%d-%H%M%S"
_EXPECTED = (
    "expected 'YYMMDD-HHMMSS' (e.g. '251005-210247') or 'YYMMDD-HHMMSS-ClientID' (e.g. '251005-210247-Guy-Wilson')"
)
# ASCII digits only: str patterns' \d would also match other scripts' digits.
_RUN_ID = re.compile(r"([0-9]{6}-[0-9]{6})(?:-(.+))?", re.DOTALL)
# C0 and C1 control characters, and DEL.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")

_lock = threading.Lock()
_last_issued: datetime | None = None


@dataclass(frozen=True)
class RunId:
    """A parsed run ID."""

    run_id: str
    """The job run ID part, ``YYMMDD-HHMMSS``."""
    timestamp: datetime
    """When the run started, as a UTC ``datetime``."""
    client_id: str | None = None
    """The client ID of a client run ID, ``None`` for a job run ID."""

    def __str__(self) -> str:
        return self.run_id if self.client_id is None else f"{self.run_id}-{self.client_id}"


def generate_run_id(now: datetime | None = None) -> str:
    """Return a new job run ID, ``YYMMDD-HHMMSS``.

    Without ``now`` the current UTC time is used, and the ID is claimed: no other
    job of this process, of any jobtrace process on this host, or (through the
    configured sinks: Redis, or a look at the Airtable base) of another host gets
    it. When the current second is taken, the next free second is used (see
    :mod:`jobtrace.run_claims`). With ``now`` the given time is formatted as it
    is (in its own time zone, if it has one) and nothing is claimed.
    """
    if now is not None:
        return now.strftime(_FORMAT)
    from .run_claims import claim_new_run_id  # needs the configured sinks; loaded on first use

    return claim_new_run_id()


def next_run_id_candidate() -> str:
    """The current UTC second, or the second after the last one this process issued, if that is later.

    Each call moves this process's mark forward, so no two calls return the same
    ID; it does not ask other processes (:func:`generate_run_id` does).
    """
    global _last_issued
    with _lock:
        candidate = datetime.now(timezone.utc).replace(microsecond=0)
        if _last_issued is not None and candidate <= _last_issued:
            candidate = _last_issued + timedelta(seconds=1)
        _last_issued = candidate
    return candidate.strftime(_FORMAT)


def validate_client_id(client_id: object) -> str:
    """Return ``client_id`` if it is a valid client ID, else raise ``InvalidClientIdError``.

    Valid: a string of 1 to 200 characters, not only whitespace, without
    control characters or lone surrogates.
    """
    # Fast path for the common case (a printable ID is free of control characters).
    if (
        type(client_id) is str
        and 0 < len(client_id) <= MAX_CLIENT_ID_LENGTH
        and client_id.isprintable()
        and not client_id.isspace()
    ):
        return client_id
    if type(client_id) is not str:
        raise InvalidClientIdError(f"client ID must be a string, got {type(client_id).__name__}: {client_id!r}")
    if not client_id.strip():
        raise InvalidClientIdError("client ID must be a non-empty string")
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise InvalidClientIdError(
            f"client ID is {len(client_id)} characters long; the limit is {MAX_CLIENT_ID_LENGTH}"
        )
    if _CONTROL.search(client_id):
        raise InvalidClientIdError(f"client ID must not contain control characters: {client_id!r}")
    if has_surrogates(client_id):
        raise InvalidClientIdError(
            f"client ID {client_id!r} contains a lone surrogate (e.g. half of an emoji cut in two): "
            f"it cannot be encoded as UTF-8, so Airtable could never match it; pass the whole character"
        )
    return client_id


def client_run_id(run_id: str, client_id: str) -> str:
    """Return the client run ID ``YYMMDD-HHMMSS-ClientID`` for a job run ID and a client ID."""
    validate_job_run_id(run_id)
    return f"{run_id}-{validate_client_id(client_id)}"


def parse_run_id(text: str) -> RunId:
    """Parse a job or client run ID; raise ``InvalidRunIdError`` showing the expected format."""
    if not isinstance(text, str):
        raise InvalidRunIdError(f"run ID must be a string, got {type(text).__name__}; {_EXPECTED}")
    match = _RUN_ID.fullmatch(text)
    if match is None:
        raise InvalidRunIdError(f"malformed run ID {text!r}: {_EXPECTED}")
    base, client = match.groups()
    try:
        timestamp = datetime.strptime(base, _FORMAT).replace(tzinfo=timezone.utc)
    except ValueError:
        raise InvalidRunIdError(f"run ID {text!r} is not a real date and time: {_EXPECTED}") from None
    if client is not None:
        try:
            validate_client_id(client)
        except InvalidClientIdError as exc:
            raise InvalidRunIdError(f"run ID {text!r} has an invalid client part ({exc}): {_EXPECTED}") from None
    return RunId(run_id=base, timestamp=timestamp, client_id=client)


def validate_job_run_id(run_id: object) -> str:
    """Return ``run_id`` if it is a job run ID (no client part), else raise ``InvalidRunIdError``."""
    parsed = parse_run_id(run_id)  # type: ignore[arg-type]
    if parsed.client_id is not None:
        raise InvalidRunIdError(
            f"{run_id!r} is a client run ID; a job run ID is 'YYMMDD-HHMMSS' (here {parsed.run_id!r})"
        )
    return parsed.run_id

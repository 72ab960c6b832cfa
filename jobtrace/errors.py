"""The exceptions jobtrace raises.

Every exception has one root, :class:`JobtraceError`, and also inherits the
builtin a caller would naturally catch::

    JobtraceError
    ├── InvalidRunIdError          (ValueError)  malformed run ID
    ├── InvalidClientIdError       (ValueError)  empty, too long, control characters
    ├── UnknownFieldError          (KeyError, ValueError)  no such field in the mapping
    │   └── ComputedFieldError     a formula/rollup/created-time field: Airtable rejects writes
    ├── InvalidValueError          (ValueError)  wrong type for a field, unknown status
    ├── NoActiveRunError           (RuntimeError)  client_run/note/incr outside any run
    ├── RecordNotFoundError        (LookupError)  no sink knows the record asked for
    │   └── RecordUnavailableError  no sink could read it back (a resume that would clobber it)
    ├── ConfigurationError         (ValueError)  bad configuration, schema mismatch
    └── SinkError                  (RuntimeError)  a sink failed (raised only with strict=True)

Programming errors (a bad field name, a malformed run ID) are raised at the
call, before any record is touched. Sink failures never reach the job unless
``jobtrace.configure(strict=True)``.
"""

from __future__ import annotations

__all__ = [
    "ComputedFieldError",
    "ConfigurationError",
    "InvalidClientIdError",
    "InvalidRunIdError",
    "InvalidValueError",
    "JobtraceError",
    "NoActiveRunError",
    "RecordNotFoundError",
    "RecordUnavailableError",
    "SinkError",
    "UnknownFieldError",
]


class JobtraceError(Exception):
    """Root of every exception jobtrace raises."""


class InvalidRunIdError(JobtraceError, ValueError):
    """A run ID does not have the ``YYMMDD-HHMMSS[-ClientID]`` shape."""


class InvalidClientIdError(JobtraceError, ValueError):
    """A client ID is empty, too long or contains control characters."""


class UnknownFieldError(JobtraceError, KeyError, ValueError):
    """A field name is not part of the field mapping.

    Raised at the call so that a typo can never be dropped silently (the old
    tracking code lost months of updates that way).
    """

    # KeyError.__str__ would repr() the message; keep it readable.
    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ComputedFieldError(UnknownFieldError):
    """A field is computed by Airtable (formula, rollup, created time...): never writable."""


class InvalidValueError(JobtraceError, ValueError):
    """A value has the wrong type for its field, or a status is not a known choice."""


class NoActiveRunError(JobtraceError, RuntimeError):
    """An operation needs a run, and there is none in the current context."""


class RecordNotFoundError(JobtraceError, LookupError):
    """A record was asked for (by run ID, client ID) and no sink knows it."""


class RecordUnavailableError(RecordNotFoundError):
    """A record had to be read back (a resume, an attach, a webhook update) and no sink could read it.

    Raised at the call, before anything is written: continuing a record whose
    counters, notes and Start Time are unknown would overwrite them.
    """


class ConfigurationError(JobtraceError, ValueError):
    """jobtrace or a sink is configured wrongly (including a base that does not fit the mapping)."""


class SinkError(JobtraceError, RuntimeError):
    """A sink failed to accept a change. Raised only when ``strict=True``."""

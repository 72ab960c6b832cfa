"""The exception tree: one root, and each error is also the builtin a caller would catch."""

from __future__ import annotations

import pytest

import jobtrace
from jobtrace import (
    ComputedFieldError,
    ConfigurationError,
    InvalidClientIdError,
    InvalidRunIdError,
    InvalidValueError,
    JobtraceError,
    NoActiveRunError,
    SinkError,
    UnknownFieldError,
)


@pytest.mark.parametrize(
    ("error", "builtins"),
    [
        (InvalidRunIdError, (ValueError,)),
        (InvalidClientIdError, (ValueError,)),
        (UnknownFieldError, (KeyError, ValueError)),
        (ComputedFieldError, (KeyError, ValueError, UnknownFieldError)),
        (InvalidValueError, (ValueError,)),
        (NoActiveRunError, (RuntimeError,)),
        (ConfigurationError, (ValueError,)),
        (SinkError, (RuntimeError,)),
    ],
)
def test_every_error_has_the_one_root_and_its_builtin(error: type[Exception], builtins: tuple[type, ...]) -> None:
    assert issubclass(error, JobtraceError)
    for builtin in builtins:
        assert issubclass(error, builtin)


def test_every_exported_exception_derives_from_jobtrace_error() -> None:
    exported = [getattr(jobtrace, n) for n in jobtrace.__all__]
    errors = [e for e in exported if isinstance(e, type) and issubclass(e, BaseException)]
    assert len(errors) >= 9
    assert all(issubclass(e, JobtraceError) for e in errors)


def test_unknown_field_error_can_be_caught_as_key_error_with_a_readable_message() -> None:
    with jobtrace.tracked_job("post-scoring") as job, pytest.raises(KeyError) as info:
        job.update(no_such_field=1)
    # KeyError would normally repr() its message; the text must stay readable.
    assert str(info.value).startswith("unknown field 'no_such_field'")

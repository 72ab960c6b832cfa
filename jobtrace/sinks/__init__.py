"""Where record changes go: the :class:`Sink` interface and its implementations.

``MemorySink`` and ``LogSink`` are always available; ``AirtableSink`` needs the
``airtable`` extra (``pip install 'jobtrace[airtable]'``) and is imported only
when first used, so ``import jobtrace`` never loads pyairtable or requests.

The core (``jobtrace.tracker``) names no concrete sink: it asks this package
for :func:`default_sinks` (no configuration) and :func:`sinks_from_env`
(``jobtrace.configure_from_env()``). A backend that should be chosen from the
environment registers a factory with :func:`register_env_factory`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError
from .base import Sink
from .memory import MemorySink

if TYPE_CHECKING:
    from .airtable import AirtableSink
    from .log import LogSink

__all__ = [
    "AirtableSink",
    "LogSink",
    "MemorySink",
    "Sink",
    "default_sinks",
    "register_env_factory",
    "sinks_from_env",
]

EnvFactory = Callable[[Mapping[str, str]], "Sink | None"]
"""Builds a sink from the environment, or returns None when the environment does not ask for it."""


def default_sinks() -> list[Sink]:
    """The sinks of a process that configured none: a :class:`LogSink`."""
    from .log import LogSink

    return [LogSink()]


def _airtable_from_env(env: Mapping[str, str]) -> Sink | None:
    present = {name: bool(env.get(name, "").strip()) for name in ("AIRTABLE_API_KEY", "AIRTABLE_BASE_ID")}
    if not any(present.values()):
        return None
    if not all(present.values()):
        # A half-done setup must not fall back to logs in silence.
        (found,) = (name for name, here in present.items() if here)
        (missing,) = (name for name, here in present.items() if not here)
        raise ConfigurationError(
            f"{found} is set but {missing} is not: set {missing} too to track to Airtable "
            f"(or unset {found} to use the log sink)"
        )
    from .airtable import AirtableSink

    return AirtableSink.from_env(env)


_env_factories: list[EnvFactory] = [_airtable_from_env]


def register_env_factory(factory: EnvFactory) -> None:
    """Let ``jobtrace.configure_from_env()`` build a sink of yours when the environment asks for it."""
    _env_factories.append(factory)


def sinks_from_env(env: Mapping[str, str]) -> list[Sink]:
    """The sinks the environment asks for (Airtable when ``AIRTABLE_API_KEY`` and ``AIRTABLE_BASE_ID``
    are set, then any registered factory's), else :func:`default_sinks`."""
    found = [sink for factory in _env_factories if (sink := factory(env)) is not None]
    return found or default_sinks()


def __getattr__(name: str) -> Any:
    # Lazy: LogSink imports structlog, AirtableSink imports pyairtable.
    if name == "LogSink":
        from .log import LogSink

        return LogSink
    if name == "AirtableSink":
        from .airtable import AirtableSink

        return AirtableSink
    raise AttributeError(f"module 'jobtrace.sinks' has no attribute {name!r}")

"""Configuration and the fan-out of changes to sinks.

One process-wide configuration: the sinks, the schema, strict mode. Records
submit their changes to the dispatcher (:mod:`jobtrace.dispatch`), which
calls :func:`deliver` off the job's thread; it hands the change to every sink
and makes sure a sink failure never reaches the job (it is logged with the
run ID and counted). With ``strict=True`` (tests) delivery happens on the
caller's thread and a sink failure raises ``SinkError`` there.

Everything that reads what sinks hold (``flush``, ``diagnostics``, resuming
a run, ``configure``/``restore`` switching sinks) first waits for the
dispatcher to hand over what was recorded before it.
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .changes import Change, utc_iso
from .dispatch import Entry, dispatcher
from .errors import ConfigurationError, RecordUnavailableError, SinkError
from .process_state import state
from .redaction import redact
from .schema import Schema
from .sinks.base import Sink

__all__ = [
    "Config",
    "configure",
    "configure_from_env",
    "deliver",
    "diagnostics",
    "emit",
    "flush",
    "get_config",
    "read_record",
    "shutdown",
]

logger = logging.getLogger("jobtrace")

#: How long the interpreter-exit flush may wait for sinks, in seconds.
EXIT_FLUSH_TIMEOUT = 10.0


@dataclass(frozen=True)
class Config:
    """A complete configuration; replaced as a whole, never mutated."""

    sinks: tuple[Sink, ...]
    schema: Schema
    strict: bool = False
    bind_structlog: bool = False
    structlog_contextvars: Any = field(default=None, repr=False, compare=False)
    """``structlog.contextvars`` when binding is on (imported at configure, not per call)."""


def configure(
    sinks: Iterable[Sink] | None = None,
    strict: bool = False,
    schema: Schema | None = None,
    bind_structlog: bool | None = None,
) -> Config | None:
    """Set the sinks (and optionally the schema); return the previous configuration (None if none).

    ``sinks=None`` means the sink package's default (:func:`jobtrace.sinks.default_sinks`:
    a :class:`~jobtrace.sinks.LogSink`). ``strict=True`` makes sink errors raise
    ``SinkError`` (for tests; changes are then handed to sinks on the caller's
    thread). ``bind_structlog`` binds ``run_id``/``client_id`` in
    ``structlog.contextvars`` while a run is active; by default it is on when a
    configured sink asks for it (``Sink.binds_structlog``, as the LogSink does).
    Each sink's ``start(schema)`` runs here, so a base that does not fit the
    mapping fails now with ``ConfigurationError``, not in the middle of a job.
    The previous sinks are not closed: pass the returned value to
    :func:`restore` to go back to it, or call :func:`shutdown` first.
    """
    schema = schema if schema is not None else Schema.default()
    if sinks is None:
        from .sinks import default_sinks

        sinks = default_sinks()
    sinks = tuple(sinks)
    for sink in sinks:
        if not isinstance(sink, Sink):
            raise ConfigurationError(f"{sink!r} is not a jobtrace sink: subclass jobtrace.sinks.Sink")
    for sink in sinks:
        sink.start(schema)
    if bind_structlog is None:
        bind_structlog = any(s.binds_structlog for s in sinks)
    new = Config(sinks, schema, strict, bind_structlog, _load_structlog() if bind_structlog else None)
    return _switch(new)


def _switch(new: Config | None) -> Config | None:
    """Make ``new`` current; what was recorded before goes to the sinks of the configuration it was made under."""
    dispatcher.barrier()
    with state.lock:
        previous = state.config
        state.config = new
        dispatcher.inline = new is not None and new.strict
    if previous is not new:
        # What the explicit API remembers was read from, and written to, the old sinks.
        state.forget_explicit()
    return previous


def configure_from_env(strict: bool = False, schema: Schema | None = None) -> Config | None:
    """Configure the sinks the environment asks for (:func:`jobtrace.sinks.sinks_from_env`).

    Airtable when ``AIRTABLE_API_KEY`` and ``AIRTABLE_BASE_ID`` are set (also
    ``AIRTABLE_ENDPOINT_URL``, ``JOBTRACE_JOURNAL``); with neither set, the
    default LogSink. With only one of the two set, ``ConfigurationError``
    naming the missing one (a half-done setup must not fall back to logs in
    silence). Returns what :func:`configure` returns.
    """
    from .sinks import sinks_from_env

    return configure(sinks_from_env(os.environ), strict=strict, schema=schema)


def restore(config: Config | None) -> None:
    """Put back a configuration returned by :func:`configure` (None: unconfigured)."""
    _switch(config)


def get_config() -> Config:
    """The current configuration; the first call configures the default (LogSink)."""
    config = state.config
    if config is None:
        with state.lock:
            config = state.config
        if config is None:
            configure()
            config = state.config
            assert config is not None
    return config


def load_structlog_contextvars() -> Any:
    """``structlog.contextvars`` (imported on first use: only when binding is on)."""
    return _load_structlog()


def _load_structlog() -> Any:
    import structlog.contextvars

    return structlog.contextvars


def deliver(entries: list[Entry]) -> None:
    """Turn records' submitted entries into Changes and hand them, in order, to every sink.

    The dispatcher calls this with what it took from its queue. A sink that
    overrides ``write_many`` gets a batch of several changes in one call; any
    other sink, and any single change, goes through ``write``, each failure
    counted on its own.
    """
    config = state.config or get_config()
    if len(entries) > 1 and all(sink.coalesces for sink in config.sinks):
        entries = coalesce(entries)
    changes = [run.make_change(event, fields, ts, stamp) for run, event, fields, ts, stamp in entries]
    batched = len(changes) > 1
    for sink in config.sinks:
        if batched and type(sink).write_many is not Sink.write_many:
            try:
                sink.write_many(changes)
            except Exception as exc:
                run_ids = ", ".join(sorted({c.run_id for c in changes}))
                _sink_failed(config, sink, "write_many", exc, run_ids)
            continue
        write = sink.write
        for change in changes:
            try:
                write(change)
            except Exception as exc:
                _sink_failed(config, sink, "write", exc, change.run_id)


def coalesce(entries: list[Entry]) -> list[Entry]:
    """Merge each run of consecutive entries of one record into one entry: fields applied in order
    (later over earlier, time stamps formatted first), the last entry's event and time.

    Only neighbours merge (a client run's start, updates and end usually are), so no record's
    changes move past another change of the same record: order per record is kept.
    """
    out: list[Any] = []
    last = None
    slot: list[Any] = []
    for run, event, fields, ts, stamp in entries:
        if stamp is not None:
            fields[stamp] = utc_iso(ts)
        if run is last:
            slot[2].update(fields)  # the dispatcher owns submitted dicts: merging into the first is safe
            slot[1] = event
            slot[3] = ts
        else:
            slot = [run, event, fields, ts, None]
            out.append(slot)
            last = run
    return out


def emit(change: Change) -> None:
    """Hand one change to every sink, on this thread. Never raises a sink's error unless strict."""
    config = state.config or get_config()
    for sink in config.sinks:
        try:
            sink.write(change)
        except Exception as exc:
            _sink_failed(config, sink, "write", exc, change.run_id)


dispatcher.set_deliver(deliver)


def _sink_failed(config: Config, sink: Sink, verb: str, exc: Exception, run_id: str | None) -> None:
    text = redact(str(exc))
    with state.lock:
        state.sink_errors += 1
        state.last_sink_error = f"{type(sink).__name__}.{verb}: {type(exc).__name__}: {text}"
    if config.strict:
        error = SinkError(f"{type(sink).__name__}.{verb} failed for run {run_id}: {text}")
        # A cause that quotes a secret must not travel with the exception.
        raise error from (exc if text == str(exc) else None)
    logger.error(
        "jobtrace sink %s.%s failed for run %s: %s: %s",
        type(sink).__name__,
        verb,
        run_id,
        type(exc).__name__,
        text,
    )


_flush_hooks: list[Callable[[], None]] = []


def add_flush_hook(hook: Callable[[], None]) -> None:
    """Run ``hook`` at the start of every :func:`flush` (records use it to send held-back roll-ups)."""
    _flush_hooks.append(hook)


def flush(timeout: float = 10.0) -> bool:
    """Wait until every sink has delivered everything; True if all did within ``timeout``."""
    config = state.config
    if config is None:
        return dispatcher.barrier(timeout)
    deadline = time.monotonic() + timeout
    for hook in _flush_hooks:
        hook()
    ok = dispatcher.barrier(timeout)
    for sink in config.sinks:
        try:
            ok = sink.flush(max(0.0, deadline - time.monotonic())) and ok
        except Exception as exc:
            ok = False
            _sink_failed(config, sink, "flush", exc, None)
    return ok


def shutdown(timeout: float = 10.0) -> bool:
    """Flush and close every sink, then return to the unconfigured state."""
    deadline = time.monotonic() + timeout
    for hook in _flush_hooks:
        hook()
    ok = dispatcher.barrier(timeout)
    config = _switch(None)
    if config is None:
        return ok
    for sink in config.sinks:
        try:
            ok = sink.flush(max(0.0, deadline - time.monotonic())) and ok
            sink.close(max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            ok = False
            _sink_failed(config, sink, "close", exc, None)
    return ok


def read_record(kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
    """The first answer of any sink that can read the record back (used when resuming).

    None when every sink answered and none knows the record. When no sink
    knows it and some sink could not be read (after its own retries), raises
    ``RecordUnavailableError``: the caller must not write values it cannot
    trust over a record that may exist.
    """
    config = get_config()
    dispatcher.barrier()
    failures: list[str] = []
    for sink in config.sinks:
        try:
            found = sink.read(kind, run_id, client_id)
        except Exception as exc:
            text = redact(str(exc))
            failures.append(f"{type(sink).__name__}: {type(exc).__name__}: {text}")
            with state.lock:
                state.sink_errors += 1
                state.last_sink_error = f"{type(sink).__name__}.read: {type(exc).__name__}: {text}"
            continue
        if found is not None:
            return found
    if failures:
        which = f"client run {run_id}-{client_id}" if client_id is not None else f"job run {run_id}"
        message = (
            f"could not read the record of {which} back ({'; '.join(failures)}), so its counters, notes and "
            f"Start Time are unknown; nothing was written. Try again once the sink can be read."
        )
        logger.error("jobtrace: %s", message)
        raise RecordUnavailableError(message)
    return None


def diagnostics() -> dict[str, Any]:
    """Counts worth watching (never a secret).

    ``sink_errors`` and ``last_sink_error`` count what the sinks raised into
    jobtrace; ``sinks`` holds each configured sink's own counts (its
    ``diagnostics()``: for the Airtable sink, requests, 429s, retries, backlog,
    undeliverable records).
    """
    dispatcher.barrier()
    config = state.config
    per_sink: list[dict[str, Any]] = []
    for sink in config.sinks if config is not None else ():
        try:
            per_sink.append({"sink": type(sink).__name__, **sink.diagnostics()})
        except Exception as exc:  # a broken sink must not break the caller's health check
            per_sink.append({"sink": type(sink).__name__, "error": redact(f"{type(exc).__name__}: {exc}")})
    return {
        "sink_errors": state.sink_errors,
        "last_sink_error": state.last_sink_error,
        "dispatch_backlog": dispatcher.backlog,
        "sinks": per_sink,
    }


def _flush_at_exit() -> None:
    # Bounded: a dead backend must not hang the interpreter's exit. Whatever a
    # sink cannot deliver in time is its own to keep (the Airtable sink journals it).
    deadline = time.monotonic() + EXIT_FLUSH_TIMEOUT
    if not dispatcher.barrier(EXIT_FLUSH_TIMEOUT):
        logger.error("jobtrace: %d changes were still queued for the sinks at exit", dispatcher.backlog)
    config = state.config
    if config is None:
        return
    for sink in config.sinks:
        try:
            sink.close(max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            logger.error("jobtrace: closing %s at exit failed: %s", type(sink).__name__, exc)


atexit.register(_flush_at_exit)

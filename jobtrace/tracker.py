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

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import lifecycle
from .changes import END, START, Change, utc_iso
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

#: How long the exit path (interpreter exit, SIGTERM) may wait for all sinks together, in seconds.
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
    exit_timeout: float = EXIT_FLUSH_TIMEOUT
    """The one bound for delivering to every sink at exit and after SIGTERM, in seconds."""
    handle_signals: bool = True
    """Whether jobtrace installs its SIGTERM handler where the signal is unowned."""


def configure(
    sinks: Iterable[Sink] | None = None,
    strict: bool = False,
    schema: Schema | None = None,
    bind_structlog: bool | None = None,
    *,
    exit_timeout: float = EXIT_FLUSH_TIMEOUT,
    handle_signals: bool = True,
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

    ``exit_timeout`` is the one bound, for all sinks together, of the exit
    path (interpreter exit, SIGTERM): keep it inside your platform's grace
    period (30 s on Docker, Kubernetes, systemd). ``handle_signals=False``
    stops jobtrace from installing its SIGTERM handler (it never replaces a
    handler someone else installed); see :mod:`jobtrace.lifecycle`.
    """
    if (
        isinstance(exit_timeout, bool)
        or not isinstance(exit_timeout, (int, float))
        or not (math.isfinite(exit_timeout) and exit_timeout > 0)
    ):
        raise ConfigurationError(f"exit_timeout must be a positive number of seconds, got {exit_timeout!r}")
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
    new = Config(
        sinks,
        schema,
        strict,
        bind_structlog,
        _load_structlog() if bind_structlog else None,
        float(exit_timeout),
        bool(handle_signals),
    )
    previous = _switch(new)
    lifecycle.configure(new.handle_signals)
    return previous


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


def configured() -> Config | None:
    """The current configuration, or None when jobtrace is not configured (never configures)."""
    return state.config


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
    (later over earlier, time stamps formatted first) and the last entry's time. The event is
    ``end`` if the run holds an end, else ``start`` if it holds a start (sinks such as the
    AirtableSink keep track of open runs by those two), else ``update``.

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
            if event == END or slot[1] != START:
                slot[1] = event  # a start followed by updates stays a start: sinks track open runs by it
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


def sink_failed(config: Config, sink: Sink, verb: str, exc: Exception, run_id: str | None) -> None:
    """Count and log a sink's failure (raise ``SinkError`` when strict)."""
    _sink_failed(config, sink, verb, exc, run_id)


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


def close_sinks(timeout: float) -> bool:
    """Close every configured sink within ``timeout`` seconds in total (the exit path).

    Bounded: a dead backend must not hang the interpreter's exit. What was
    recorded is first handed over by the dispatcher (within the same bound);
    whatever a sink cannot deliver in time is its own to keep (the Airtable
    sink journals it).
    """
    deadline = time.monotonic() + timeout
    config = state.config
    if config is None:
        return dispatcher.barrier(timeout)
    for hook in _flush_hooks:
        try:
            hook()
        except Exception as exc:
            logger.error("jobtrace: a flush hook failed at exit: %s", exc)
    ok = dispatcher.barrier(max(0.0, deadline - time.monotonic()))
    if not ok:
        logger.error("jobtrace: %d changes were still queued for the sinks at exit", dispatcher.backlog)
    for sink in config.sinks:
        try:
            ok = sink.flush(max(0.0, deadline - time.monotonic())) and ok
        except Exception as exc:
            ok = False
            logger.error("jobtrace: flushing %s at exit failed: %s", type(sink).__name__, exc)
    for sink in config.sinks:
        try:
            sink.close(max(0.0, deadline - time.monotonic()))
        except Exception as exc:
            ok = False
            logger.error("jobtrace: closing %s at exit failed: %s", type(sink).__name__, exc)
    return ok

"""EngineSink: a jobtrace sink that delivers through the engine to any transport."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..changes import CLIENT, JOB, Change
from ..errors import SinkError
from ..sinks.base import Sink
from .engine import DeliveryEngine, EngineClosed
from .transport import Transport

if TYPE_CHECKING:
    from ..schema import Schema

__all__ = ["EngineSink"]


class EngineSink(Sink):
    """Hands each change to a :class:`~.engine.DeliveryEngine` writing to ``transport``.

    ::

        transport = MemoryTransport()
        jobtrace.configure([EngineSink(transport)])

    Records are upserted on their key fields (``Run ID``; ``Run ID`` +
    ``Client ID`` for client runs), as the AirtableSink does. ``engine_options``
    go to :class:`~.engine.DeliveryEngine`: e.g. ``journal=Journal(path)`` and a
    ``destination`` name, so what a killed process could not deliver is
    delivered by the next one.
    """

    coalesces = True  # the engine merges a record's pending changes anyway

    def __init__(self, transport: Transport, **engine_options: Any) -> None:
        self._transport = transport
        self._options = engine_options
        self._engine: DeliveryEngine | None = None
        self._key_fields: dict[str, tuple[str, ...]] = {}
        self._tables: dict[str, str] = {}

    @property
    def engine(self) -> DeliveryEngine | None:
        """The engine, once started."""
        return self._engine

    def start(self, schema: Schema) -> None:
        client = schema.client.names
        self._key_fields = {
            JOB: (schema.job.names.run_id,),
            CLIENT: tuple(dict.fromkeys((client.run_id, client.client_id or client.run_id))),
        }
        self._tables = {JOB: schema.job.name, CLIENT: schema.client.name}
        if self._engine is None:
            self._engine = DeliveryEngine(self._transport, **self._options)

    def write(self, change: Change) -> None:
        engine = self._engine
        if engine is None:
            raise SinkError("EngineSink.write() before start(): configure it with jobtrace.configure(sinks=[...])")
        try:
            engine.submit(change.table, self._key_fields[change.kind], change.fields, key=change.key)
        except EngineClosed:
            raise SinkError("this EngineSink is closed; configure a new one") from None

    def flush(self, timeout: float = 10.0) -> bool:
        return True if self._engine is None else self._engine.flush(timeout)

    def close(self, timeout: float = 10.0) -> None:
        if self._engine is not None:
            self._engine.close(timeout)

    def read(self, kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
        engine = self._engine
        if engine is None:
            return None
        key_fields = self._key_fields[kind]
        values = [run_id] if kind == JOB else [f"{run_id}-{client_id}", client_id]
        return engine.read(self._tables[kind], key_fields, dict(zip(key_fields, values)))

    def diagnostics(self) -> dict[str, Any]:
        engine = self._engine
        if engine is None:
            return {}
        stats = engine.stats
        return {
            "requests": stats.requests,
            "records_delivered": stats.records_delivered,
            "changes_submitted": stats.changes_submitted,
            "rate_limited": stats.rate_limited,
            "retries": stats.retries,
            "batches_split": stats.batches_split,
            "set_aside": stats.set_aside,
            "leftovers_claimed": stats.leftovers_claimed,
            "journal_failures": stats.journal_failures,
            "not_kept": engine.not_kept(),
            "backlog": engine.backlog,
            "journal": engine.journal.path,
            "last_error": stats.last_error,
        }

    def __repr__(self) -> str:
        return f"<EngineSink {type(self._transport).__name__}>"

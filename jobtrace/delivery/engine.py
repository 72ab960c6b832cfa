"""The delivery engine: coalesce, batch, throttle, retry, isolate what is refused. Backend-neutral.

``submit()`` merges a record's fields into a pending dict (later over
earlier) and returns: O(1), no I/O. A daemon thread does the rest, in a loop:

1. pick up to ``transport.max_batch`` pending records of one table, oldest
   first, and wait for the rate budget (``requests_per_second``);
2. ``transport.send()`` them and act on the outcome:

   - :class:`~.transport.Delivered`: done (unless a record changed
     meanwhile: then its newer fields go out next);
   - :class:`~.transport.RetryAfter`: kept, and retried after the delay the
     backend asked for, or after an exponential, capped backoff; with
     ``pause_all`` nothing is sent to the backend meanwhile;
   - :class:`~.transport.Refused`: a batch of several is split in halves
     until the refused record is alone; then the refused field (or, if the
     backend cannot tell, the record) is set aside (:attr:`set_aside`,
     logged, counted) and the rest of the record goes through.

With a ``journal`` (a :class:`~jobtrace.sinks.airtable.journal.Journal`, or
anything with its ``register/heartbeat/release/save/delete/claim/set_aside``),
every pending record is saved to it within ``DRAIN_INTERVAL`` and before it
is sent, and deleted once delivered; what a closing engine could not deliver
stays there, and the next engine for the same ``destination`` claims and
delivers it (a process that died leaves its rows to the next one too).

Nothing here knows a backend's protocol or errors: that is the transport's
(:mod:`.airtable` for Airtable, :mod:`.memory` for tests).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from .transport import Delivered, Outcome, Refused, RetryAfter, Transport

__all__ = ["DeliveryEngine", "EngineStats", "SetAside"]

logger = logging.getLogger("jobtrace")

RecordKey = tuple[str, tuple[Any, ...]]

#: How often, at most, pending records are saved to the journal while they wait to be sent (s).
DRAIN_INTERVAL: Final = 0.1
#: How often a running engine tells other processes it is alive (s).
HEARTBEAT_INTERVAL: Final = 30.0


@dataclass
class EngineStats:
    """What the engine did (for ``diagnostics()``)."""

    requests: int = 0
    records_delivered: int = 0
    retries: int = 0
    batches_split: int = 0
    set_aside: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class SetAside:
    """A field (or a whole record, ``field`` None) the backend refused, kept here instead of lost."""

    table: str
    key: tuple[Any, ...]
    field: str | None
    value: Any
    reason: str


@dataclass
class _Pending:
    table: str
    key_fields: tuple[str, ...]
    fields: dict[str, Any]
    version: int = 0
    saved: int = -1  # the version last saved to the journal
    journal_version: int = 0  # the journal's version of that save (what delete() must match)


class DeliveryEngine:
    """Delivers records to one :class:`~.transport.Transport`, in the background."""

    def __init__(
        self,
        transport: Transport,
        *,
        requests_per_second: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        journal: Any = None,
        destination: str = "default",
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError(f"requests_per_second must be positive, got {requests_per_second!r}")
        self.transport = transport
        self.stats = EngineStats()
        self.set_aside: list[SetAside] = []
        self._interval = 1.0 / requests_per_second
        self._backoff = (backoff_initial, backoff_max)
        self._cond = threading.Condition(threading.Lock())
        self._pending: dict[RecordKey, _Pending] = {}  # insertion order = oldest first
        self._forced: deque[list[RecordKey]] = deque()  # halves of a split batch, sent before anything else
        self._inflight = 0
        self._next_send = 0.0
        self._failures = 0
        self._closed = False
        self._journal = journal
        self._destination = destination
        self._owner = f"engine-{uuid.uuid4().hex}"
        self._versions = itertools.count(1)
        self._last_drain = 0.0
        self._last_heartbeat = time.monotonic()
        if journal is not None:
            journal.register(self._owner)
            for row in journal.claim(destination, self._owner):  # what earlier engines left behind
                self.submit(row.table, row.key_fields, row.fields)
        self._thread = threading.Thread(target=self._run, name="jobtrace-delivery", daemon=True)
        self._thread.start()

    # -- the sink side ------------------------------------------------------------------

    def submit(self, table: str, key_fields: Sequence[str], fields: Mapping[str, Any]) -> None:
        """Queue a record's changed fields (absolute values; None clears). O(1), never blocks on I/O."""
        key_fields = tuple(key_fields)
        key: RecordKey = (table, tuple(fields.get(k) for k in key_fields))
        with self._cond:
            if self._closed:
                raise RuntimeError("DeliveryEngine.submit() after close()")
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = _Pending(table, key_fields, dict(fields))
            else:
                pending.fields.update(fields)
                pending.version += 1
            self._cond.notify()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted is delivered or set aside; True if so within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._inflight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float = 10.0) -> bool:
        """Flush within ``timeout``, then stop the thread; True if everything was delivered."""
        ok = self.flush(timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(1.0)
        if self._journal is not None:
            self._drain(everything=True)  # what is left stays journaled for the next engine or replay
            self._journal.release(self._owner)
        self.transport.close()
        return ok

    def read(self, table: str, key_fields: Sequence[str], key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record as the backend has it, with what is not delivered yet merged on top."""
        stored = self.transport.read(table, key)
        record_key: RecordKey = (table, tuple(key.get(k) for k in key_fields))
        with self._cond:
            pending = self._pending.get(record_key)
            if pending is None:
                return dict(stored) if stored is not None else None
            merged = dict(stored or {})
            merged.update(pending.fields)
        return {k: v for k, v in merged.items() if v is not None}

    @property
    def backlog(self) -> int:
        """Records not delivered yet."""
        with self._cond:
            return len(self._pending) + self._inflight

    # -- the engine's thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            if self._journal is not None:
                self._housekeeping()
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait(HEARTBEAT_INTERVAL if self._journal is not None else None)
                    if self._journal is not None:
                        break
                if self._closed:
                    return  # close() journals what is left
                if not self._pending:
                    continue
                wait = self._next_send - time.monotonic()
                if wait > 0:
                    self._cond.wait(min(wait, DRAIN_INTERVAL) if self._journal is not None else wait)
                    continue
                batch = self._take()
                if not batch:
                    continue
                sent = [(key, self._pending.pop(key)) for key in batch]
                snapshot = [(key, p, p.version, dict(p.fields)) for key, p in sent]
                self._inflight = len(snapshot)
                self._next_send = time.monotonic() + self._interval
            try:
                self._send(snapshot)
            finally:
                with self._cond:
                    self._inflight = 0
                    self._cond.notify_all()

    def _take(self) -> list[RecordKey]:
        """Keys of the next batch: a split half first, else the oldest records of one table (lock held)."""
        while self._forced:
            keys = [k for k in self._forced.popleft() if k in self._pending]
            if keys:
                return keys
        first = next(iter(self._pending.values()))
        group = (first.table, first.key_fields)
        keys = []
        for key, pending in self._pending.items():
            if (pending.table, pending.key_fields) == group:
                keys.append(key)
                if len(keys) == self.transport.max_batch:
                    break
        return keys

    # -- the journal ------------------------------------------------------------------------

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_drain >= DRAIN_INTERVAL:
            self._last_drain = now
            self._drain()
        if now - self._last_heartbeat >= HEARTBEAT_INTERVAL:
            self._last_heartbeat = now
            self._guard(self._journal.heartbeat, self._owner)

    def _drain(self, everything: bool = False) -> None:
        """Save pending records that changed since their last save (all of them with ``everything``)."""
        with self._cond:
            changed = [p for p in self._pending.values() if everything or p.saved != p.version]
            rows = []
            for pending in changed:
                version = next(self._versions)
                pending.saved, pending.journal_version = pending.version, version
                rows.append((self._row(pending.table, pending.key_fields, dict(pending.fields)), version))
        if rows:
            self._guard(self._journal.save, self._destination, self._owner, rows)

    def _row(self, table: str, key_fields: tuple[str, ...], fields: dict[str, Any]) -> Any:
        from .journal import JournalRow, record_key

        return JournalRow(table, record_key(key_fields, fields), key_fields, fields)

    def _guard(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # a broken journal must not stop delivery
            logger.error("jobtrace: the delivery journal failed (%s: %s); delivery goes on", type(exc).__name__, exc)
            return None

    # -- sending --------------------------------------------------------------------------

    def _send(self, snapshot: list[tuple[RecordKey, _Pending, int, dict[str, Any]]]) -> Outcome:
        table, key_fields = snapshot[0][1].table, snapshot[0][1].key_fields
        if self._journal is not None:
            # Saved before it is sent: a crash mid-request leaves it for the next engine.
            rows = []
            for _, pending, _, fields in snapshot:
                version = next(self._versions)
                pending.saved, pending.journal_version = pending.version, version
                rows.append((self._row(table, key_fields, fields), version))
            self._guard(self._journal.save, self._destination, self._owner, rows)
        self.stats.requests += 1
        try:
            outcome = self.transport.send(table, key_fields, [fields for _, _, _, fields in snapshot])
        except Exception as exc:  # a transport bug: keep the records, retry with the backoff
            outcome = RetryAfter(0.0, f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, Delivered):
            # A record changed while in flight is pending again (with only what changed): it goes next.
            self._failures = 0
            self.stats.records_delivered += len(snapshot)
            if self._journal is not None:
                done = [
                    (
                        p.table,
                        self._row(p.table, p.key_fields, dict(zip(p.key_fields, k[1]))).record_key,
                        p.journal_version,
                    )
                    for k, p, _, _ in snapshot
                ]
                self._guard(self._journal.delete, self._destination, self._owner, done)
            return outcome
        with self._cond:
            for key, pending, _, _ in snapshot:
                self._requeue(key, pending)
        if isinstance(outcome, RetryAfter):
            self._failures += 1
            self.stats.retries += 1
            self.stats.last_error = outcome.reason
            delay = outcome.seconds or min(self._backoff[1], self._backoff[0] * 2 ** (self._failures - 1))
            with self._cond:
                self._next_send = max(self._next_send, time.monotonic() + delay)
            logger.warning("jobtrace: delivery to %s failed (%s); retrying in %.2f s", table, outcome.reason, delay)
            return outcome
        self._refused(snapshot, outcome)
        return outcome

    def _requeue(self, key: RecordKey, pending: _Pending) -> None:
        """Put a record back in front of what is pending (lock held); merge what changed meanwhile over it."""
        newer = self._pending.pop(key, None)
        if newer is not None:
            pending.fields.update(newer.fields)
            pending.version += 1
        self._pending = {key: pending, **self._pending}

    def _refused(self, snapshot: list[tuple[RecordKey, _Pending, int, dict[str, Any]]], outcome: Refused) -> None:
        keys = [key for key, _, _, _ in snapshot]
        self.stats.last_error = outcome.reason
        if len(keys) > 1:
            self.stats.batches_split += 1
            half = len(keys) // 2
            with self._cond:
                self._forced.appendleft(keys[half:])
                self._forced.appendleft(keys[:half])
            return
        key, pending, _, fields = snapshot[0]
        with self._cond:
            refusable = outcome.field is not None and outcome.field not in pending.key_fields
            if refusable and outcome.field in pending.fields:
                value = pending.fields.pop(outcome.field)
                aside = SetAside(pending.table, key[1], outcome.field, value, outcome.reason)
            else:
                self._pending.pop(key, None)
                aside = SetAside(pending.table, key[1], None, dict(fields), outcome.reason)
            self.set_aside.append(aside)
            self.stats.set_aside += 1
        if self._journal is not None:
            kept = {aside.field: aside.value} if aside.field is not None else dict(fields)
            self._guard(
                self._journal.set_aside,
                self._destination,
                self._owner,
                self._row(pending.table, pending.key_fields, {**dict(zip(pending.key_fields, key[1])), **kept}),
                outcome.reason,
                pending.journal_version,
                aside.field is None,
            )
        logger.error(
            "jobtrace: %s refused %s of record %s (%s); set aside, the rest goes on",
            pending.table,
            f"field {aside.field!r}" if aside.field is not None else "the record",
            key[1],
            outcome.reason,
        )

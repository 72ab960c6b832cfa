"""The delivery engine: coalesce, journal, batch, pace, retry, set aside. Backend-neutral.

``submit()`` (a sink's ``write``) only merges a record's changed fields into
an in-memory dict under a lock: O(1), no I/O. Two daemon threads do the rest:

1. the *journal thread* (every ``DRAIN_INTERVAL``, so a change is journaled
   even while a request is in flight) moves pending records into the outbox
   (merging fields, later over earlier) and saves them in the write-ahead
   journal (:mod:`.journal`); it forgets there what was delivered;
2. the *sender* picks a batch of up to ``transport.max_batch`` records of one
   table, takes a slot from the limiter (:mod:`.limiter`: requests evenly
   spaced within the budget, by the limiter's schedule, which counts the
   process's other requests through it too; the AirtableSink's budget is
   shared with other processes), and hands the batch to
   :meth:`Transport.send() <.transport.Transport.send>`. A record goes out
   once the journal has it (write-ahead), or after ``JOURNAL_PATIENCE`` if
   the journal is stuck or failing. Records of runs that have just *opened or
   ended* (their ``submit`` carried an ``event``) go first, in the order they
   opened or ended, with other records of the same table riding along, so a
   new job's record and a finished run go with the next request, and a job's
   end never before the client runs it counts; any other update of a run
   still open (a job's roll-ups, a heartbeat) waits for a request with none
   of those to send, or at most ``OPEN_RUN_PATIENCE``;
3. it acts on the outcome:

   - :class:`~.transport.Delivered`: the records leave the outbox and the
     journal (unless they changed meanwhile: then their newer fields go next);
   - :class:`~.transport.RetryAfter` with ``pause_all`` (a rate limit): the
     limiter refuses every request for ``seconds`` (the penalty), then the
     batch is retried;
   - :class:`~.transport.RetryAfter` otherwise (5xx, timeouts, dropped
     connections, a token to fix): kept and retried after the delay the
     backend names (capped at ``backoff_max``) or an exponential, capped
     backoff; a send is an upsert, safe to repeat;
   - :class:`~.transport.Refused`: a batch of several is split in halves
     until the refused record is alone; then the refused field (or, when the
     backend cannot tell, the record) is set aside in the journal as
     undeliverable, logged and counted, and the rest goes through;
   - a record no request can carry (a value JSON cannot encode, e.g. NaN in a
     journal row left by an older version) is set aside before any send.

The journal makes the engine an *owner* of its rows (:mod:`.owners`: an OS
lock the kernel drops when the process dies). On start the engine claims the
rows dead or closed owners left for the same ``destination`` and delivers
them under its own newer fields; :meth:`close` journals what it could not
deliver, for the next engine or a replay. ``flush(timeout)`` and
``close(timeout)`` keep their bounds even while another process holds the
journal's lock. Without a ``journal`` the engine keeps one in memory (nothing
survives the process; :meth:`not_kept` says so).

Nothing here knows a backend's protocol or errors: that is the transport's
(:mod:`.airtable` for Airtable, :mod:`.memory` for tests).
"""

from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from ..redaction import redact
from ..values import unsendable_fields
from .journal import Journal, JournalRow, RunEvent, record_key
from .limiter import RequestLimiter, Slot, Throttle
from .transport import Delivered, Outcome, Refused, RetryAfter, Transport

__all__ = ["DeliveryEngine", "EngineClosed", "EngineStats", "SetAside"]

logger = logging.getLogger("jobtrace")

T = TypeVar("T")

#: How often, at most, the journal thread moves new changes to the journal while requests are in flight (s).
DRAIN_INTERVAL: Final = 0.1
#: How long a record waits for the journal before it is sent anyway (a stuck or failing journal), in seconds.
JOURNAL_PATIENCE: Final = 1.0
#: How often, at most, an idle engine tells the journal it is alive (a dead owner's "last seen"), in seconds.
HEARTBEAT_INTERVAL: Final = 5.0
#: How long an update of a run still open (a job's roll-ups, a heartbeat) may wait, at most, while records of
#: runs that opened or ended go first, in seconds.
OPEN_RUN_PATIENCE: Final = 2.0
#: How many of the oldest outbox records the pick looks at for one that waited OPEN_RUN_PATIENCE.
OVERDUE_LOOKAHEAD: Final = 50
#: How many set-aside fields or records :attr:`DeliveryEngine.set_aside` remembers (the journal keeps them all).
SET_ASIDE_KEPT: Final = 1000

_MISSING = object()


class EngineClosed(RuntimeError):
    """:meth:`DeliveryEngine.submit` after :meth:`DeliveryEngine.close`."""


@dataclass
class EngineStats:
    """Counts since the engine started (read without a lock: good enough for diagnostics)."""

    requests: int = 0
    records_delivered: int = 0
    changes_submitted: int = 0
    rate_limited: int = 0
    retries: int = 0
    batches_split: int = 0
    set_aside: int = 0
    leftovers_claimed: int = 0
    journal_failures: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class SetAside:
    """A field (or a whole record, ``field`` None) the backend refused, kept in the journal instead of lost."""

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


@dataclass
class _Entry:
    row: JournalRow
    version: int
    since: float = field(default_factory=time.monotonic)
    """When the entry started waiting (its first change not yet delivered)."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.row.table, self.row.record_key)

    @property
    def key_values(self) -> tuple[Any, ...]:
        return tuple(self.row.fields.get(k) for k in self.row.key_fields)

    @property
    def label(self) -> str:
        """What a log line names the record by: its key values (the run ID first)."""
        return " / ".join(str(v) for v in self.key_values)


_Sent = tuple[_Entry, int, dict[str, Any]]


class DeliveryEngine:
    """Delivers records to one :class:`~.transport.Transport` from daemon threads; see the module docstring.

    Args:
        transport: the backend.
        limiter: the request budget to send under (default: a :class:`~.limiter.Throttle` of
            ``requests_per_second`` in this process).
        requests_per_second: the default limiter's rate (ignored with ``limiter``).
        backoff_initial, backoff_max: retry delays after failures (doubling, capped; also the cap on a
            delay the backend names, except a rate-limit penalty).
        journal: the write-ahead :class:`~.journal.Journal` (default: one in memory).
        destination: what the journal files this engine's rows under (the AirtableSink: the base ID);
            leftovers of the same destination are claimed on start.
        name: how log lines name the destination (default: ``destination``).
        claim_leftovers: claim and deliver the rows gone owners left for ``destination``.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        limiter: RequestLimiter | None = None,
        requests_per_second: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        journal: Journal | None = None,
        destination: str = "default",
        name: str | None = None,
        claim_leftovers: bool = True,
    ) -> None:
        if limiter is None:
            if requests_per_second <= 0:
                raise ValueError(f"requests_per_second must be positive, got {requests_per_second!r}")
            limiter = Throttle(requests_per_second)
        self.transport = transport
        self.limiter = limiter
        self.journal = journal if journal is not None else Journal(":memory:")
        self.destination = destination
        self.name = name or destination
        self.owner = uuid.uuid4().hex
        self.stats = EngineStats()
        self.set_aside: deque[SetAside] = deque(maxlen=SET_ASIDE_KEPT)
        self._backoff = (backoff_initial, backoff_max)
        self._claim = claim_leftovers
        # _state guards the outbox and the journal rows this engine owns; it is taken before _lock
        # when both are needed, and never held over a send or a journal write.
        self._state = threading.Lock()
        self._lock = threading.Lock()
        self._pending: dict[Hashable, _Pending] = {}
        self._events: list[RunEvent] = []  # runs opened/closed since the last drain
        # Outbox keys whose run opened or ended since their last delivery, with the number of that event
        # (under _lock): they go first (see _pick).
        self._urgent: dict[tuple[str, str], int] = {}
        self._event_numbers = itertools.count(1)
        self._delivered: list[tuple[str, str, int]] = []  # to forget in the journal at the next drain
        # Outbox records whose last version the journal lacks, with when they first lacked it: they are
        # sent once journaled (write-ahead), or after JOURNAL_PATIENCE if the journal is stuck.
        self._unsaved: dict[tuple[str, str], float] = {}
        self._journal_order = threading.RLock()  # journal writes in the order of the versions they carry
        self._registered = threading.Event()
        self._spool_wake = threading.Event()
        self._owner_lock: Any = None
        self._outbox: dict[tuple[str, str], _Entry] = {}
        self._forced: deque[list[tuple[str, str]]] = deque()  # parts of a refused batch, sent first
        self._versions = itertools.count(1)
        self._work = threading.Event()
        self._ready = threading.Event()  # set once leftovers are claimed
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._closed = False
        self._alive = True
        self._failures = 0
        self._retry_at = 0.0
        self._last_logged: dict[str, float] = {}
        self._thread = threading.Thread(target=self._run, name=f"jobtrace-delivery-{destination}", daemon=True)
        self._spooler = threading.Thread(target=self._spool, name=f"jobtrace-journal-{destination}", daemon=True)
        self._thread.start()
        self._spooler.start()

    # -- the caller's side -------------------------------------------------------------

    def submit(
        self,
        table: str,
        key_fields: Sequence[str],
        fields: Mapping[str, Any],
        *,
        key: Hashable | None = None,
        event: RunEvent | None = None,
    ) -> None:
        """Queue a record's changed fields (absolute values; None clears): O(1), never blocks on I/O.

        ``key`` identifies the record cheaply for coalescing (default: the
        table and its key values). ``event`` notes that the change opened or
        closed the record's run (the journal keeps which runs each owner has
        open, for closing a dead process's runs), and sends the record first.
        """
        key_fields = tuple(key_fields)
        if key is None:
            key = (table, tuple(fields.get(k) for k in key_fields))
        with self._lock:
            if self._closed:
                raise EngineClosed(f"the delivery engine for {self.name} is closed")
            if event is not None:
                self._events.append(event)
                # Re-inserted, so the dict's order is the order the runs opened or ended in.
                self._urgent.pop((event.table, event.record_key), None)
                self._urgent[(event.table, event.record_key)] = next(self._event_numbers)
            pending = self._pending.get(key)
            if pending is None:
                self._pending[key] = _Pending(table, key_fields, dict(fields))
                wake = len(self._pending) == 1
            else:
                pending.fields.update(fields)
                wake = False
            self.stats.changes_submitted += 1
        if wake:
            self._work.set()
            self._spool_wake.set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the engine has claimed the journal's leftovers (True), or ``timeout`` passes."""
        return self._ready.wait(timeout)

    def pending_fields(self, table: str, key: str) -> dict[str, Any]:
        """Fields of one record (``key``: :func:`~.journal.record_key`) not delivered yet."""
        found: dict[str, Any] = {}
        with self._state:
            entry = self._outbox.get((table, key))
            if entry is not None:
                found.update(entry.row.fields)
            with self._lock:
                for pending in self._pending.values():
                    if pending.table == table and record_key(pending.key_fields, pending.fields) == key:
                        found.update(pending.fields)
        return found

    def read(self, table: str, key_fields: Sequence[str], key: Mapping[str, Any]) -> dict[str, Any] | None:
        """The record as the backend has it, with what is not delivered yet merged on top."""
        stored = self.transport.read(table, key)
        pending = self.pending_fields(table, record_key(tuple(key_fields), dict(key)))
        if stored is None and not pending:
            return None
        merged = {**(stored or {}), **pending}
        return {k: v for k, v in merged.items() if v is not None}

    def idle(self, timeout: float = -1) -> bool:
        """True when nothing is waiting to be delivered (False if that cannot be told within ``timeout``)."""
        if not self._state.acquire(timeout=timeout):
            return False
        try:
            with self._lock:
                return not self._pending and not self._outbox
        finally:
            self._state.release()

    @property
    def backlog(self) -> int:
        """Records waiting to be delivered."""
        with self._state, self._lock:
            return len(self._outbox) + len(self._pending)

    @property
    def alive(self) -> bool:
        """Whether the sender thread is running."""
        return self._alive

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is delivered or set aside (True) or ``timeout`` passes."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._work.set()
        while True:
            left = deadline - time.monotonic()
            if self._ready.is_set() and self.idle(max(0.0, min(left, DRAIN_INTERVAL))):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self._alive:
                return False
            with self._progress:
                self._progress.wait(min(left, DRAIN_INTERVAL))

    def close(self, timeout: float = 10.0) -> bool:
        """Flush within ``timeout``, stop the threads, journal what is left; True if all was delivered.

        Bounded by ``timeout`` in total, also while another process holds the
        journal's lock (the journal gives up at the same deadline). What is
        left stays in the journal, released to the next engine or a replay.
        """
        timeout = max(0.0, timeout)
        deadline = time.monotonic() + timeout
        self.journal.set_deadline(deadline)
        # Keep a little of the bound for stopping the threads and the last journal write.
        delivered = self.flush(timeout - min(0.1, timeout / 4))
        with self._lock:
            self._closed = True
        self._stop.set()
        self._work.set()
        self._spool_wake.set()
        for worker in (self._spooler, self._thread):
            # The sender stops at its next loop turn; one request may still be in flight.
            worker.join(max(0.0, deadline - time.monotonic()))
        if self._journal_order.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._drain()
            finally:
                self._journal_order.release()
        if not self._thread.is_alive() and not self._unsaved_count():
            self._guard(self.journal.release, self.owner)
            if self._owner_lock is not None:
                self._owner_lock.release()
        if not delivered:
            self._report_left()
        if not self._thread.is_alive():
            self._guard(self.transport.close)
        return delivered

    def not_kept(self) -> int:
        """Undelivered records the journal does not hold (it failed, or it lives in memory only)."""
        with self._state, self._lock:
            if not self.journal.persistent:
                return len(self._outbox) + len(self._pending)
            return len(self._unsaved.keys() & self._outbox.keys()) + len(self._pending)

    def _unsaved_count(self) -> int:
        with self._state:
            return len(self._unsaved.keys() & self._outbox.keys())

    def _report_left(self) -> None:
        left = self.backlog
        if not left:
            return
        lost = self.not_kept()
        if not lost:
            logger.warning(
                "jobtrace: %d record(s) for %s not delivered yet; kept in the journal %s "
                "(delivered on the next start, or run `jobtrace replay`)",
                left,
                self.name,
                self.journal.path,
            )
            return
        where = "it lives in memory only" if not self.journal.persistent else f"it failed: {self.stats.last_error}"
        logger.error(
            "jobtrace: %d record(s) for %s not delivered; %d kept in the journal %s, %d could NOT be "
            "kept (%s) and are lost",
            left,
            self.name,
            left - lost,
            self.journal.path,
            lost,
            where,
        )

    # -- the threads ---------------------------------------------------------------------

    def _spool(self) -> None:
        """The journal's own thread: changes reach it within DRAIN_INTERVAL, requests in flight or not."""
        try:
            self._owner_lock = self._guard(self.journal.register, self.owner)
            self._registered.set()
            last_seen = time.monotonic()
            while not self._stop.is_set():
                if self._spool_wake.wait(DRAIN_INTERVAL):
                    self._spool_wake.clear()
                    time.sleep(0.005)  # let a burst of changes gather into one transaction
                if self._drain():
                    last_seen = time.monotonic()
                elif time.monotonic() - last_seen > HEARTBEAT_INTERVAL:
                    last_seen = time.monotonic()
                    self._guard(self.journal.heartbeat, self.owner)
        except BaseException:  # pragma: no cover - never expected
            logger.exception("jobtrace: the journal thread for %s stopped on an unexpected error", self.name)
        finally:
            self._registered.set()

    def _run(self) -> None:
        try:
            self._registered.wait(30.0)
            if self._claim:
                claimed = self._guard(self.journal.claim, self.destination, self.owner) or []
                self._adopt(claimed)
            self._ready.set()
            while True:
                with self._state:
                    self._move_pending()
                if self._stop.is_set():
                    break
                with self._state:
                    empty = not self._outbox
                if empty:
                    self._notify()
                    self._work.clear()
                    with self._lock:
                        more = bool(self._pending)
                    if not more:
                        self._work.wait(HEARTBEAT_INTERVAL)
                    continue
                if not self._sendable():
                    self._stop.wait(0.01)  # the journal thread is saving them (write-ahead)
                    continue
                # Requests evenly spaced within the budget, not in bursts: a change waits at most about one
                # spacing (0.2 s at 5/s) to be sent, instead of up to a second after a burst. Also a full
                # batch: sent early, it would take a slot the next request then waits for (at a job's
                # start, that left a gap of half a second). The limiter's schedule counts the process's
                # other requests through it too (a job's schema check, its run-ID lookup).
                now = time.monotonic()
                wait = max(self._retry_at, self.limiter.next_even()) - now
                slot: Slot | None = None
                if wait <= 0:
                    got = self.limiter.reserve()
                    if isinstance(got, Slot):
                        slot = got
                    else:
                        wait = got
                if slot is None:
                    self._stop.wait(min(max(wait, 0.001), DRAIN_INTERVAL))
                    continue
                try:
                    batch, forced = self._pick()
                    if batch:
                        self._send(batch, forced)
                finally:
                    self.limiter.done(slot)
                self._notify()
        except BaseException:
            logger.exception("jobtrace: the delivery engine for %s stopped on an unexpected error", self.name)
        finally:
            self._ready.set()
            self._alive = False
            self._notify()

    def _notify(self) -> None:
        with self._progress:
            self._progress.notify_all()

    def _move_pending(self) -> None:
        """Move pending changes into the outbox (call with ``_state`` held); they are journaled next drain."""
        with self._lock:
            if not self._pending:
                return
            pending, self._pending = self._pending, {}
        for item in pending.values():
            key = (item.table, record_key(item.key_fields, item.fields))
            entry = self._outbox.get(key)
            if entry is None:
                row = JournalRow(item.table, key[1], item.key_fields, item.fields)
                entry = self._outbox[key] = _Entry(row, 0)
            else:
                entry.row.fields.update(item.fields)
            entry.version = next(self._versions)
            self._unsaved.setdefault(key, time.monotonic())

    def _drain(self) -> bool:
        """Journal what changed (write-ahead), forget what was delivered; True if the journal was written.

        The journal write happens outside ``_state``, so the sender is never held
        up by the journal (or by another process holding its lock).
        """
        with self._journal_order:
            with self._state:
                self._move_pending()
                with self._lock:
                    events, self._events = self._events, []
                done, self._delivered = self._delivered, []
                saved = [(entry.row, entry.version) for key, entry in self._outbox.items() if key in self._unsaved]
                rows = [(JournalRow(r.table, r.record_key, r.key_fields, dict(r.fields)), v) for r, v in saved]
            if not rows and not done and not events:
                return False
            try:
                self.journal.save(self.destination, self.owner, rows, done, events)
            except Exception as exc:
                self.stats.journal_failures += 1
                self.stats.last_error = f"journal: {type(exc).__name__}: {exc}"
                with self._state:
                    self._delivered[:0] = done  # forget them next time
                with self._lock:
                    self._events[:0] = events
                self._log(
                    "journal",
                    logging.ERROR,
                    "jobtrace: journal %s failed (%s); %d record(s) not kept there yet (retrying)",
                    self.journal.path,
                    exc,
                    len(rows),
                )
                return False
            with self._state:
                for row, version in saved:
                    key = (row.table, row.record_key)
                    entry = self._outbox.get(key)
                    if entry is None or entry.version == version:
                        self._unsaved.pop(key, None)
            return True

    def _adopt(self, rows: list[JournalRow]) -> None:
        """Take leftovers claimed from the journal into the outbox (under newer fields of ours)."""
        if not rows:
            return
        with self._state:
            saved = []
            for row in rows:
                key = (row.table, row.record_key)
                entry = self._outbox.get(key)
                if entry is None:
                    entry = self._outbox[key] = _Entry(row, 0)
                else:
                    entry.row.fields = {**row.fields, **entry.row.fields}
                entry.version = next(self._versions)
                saved.append((entry.row, entry.version))
            self._guard(self.journal.save, self.destination, self.owner, saved)
        self.stats.leftovers_claimed += len(rows)
        logger.info("jobtrace: delivering %d record(s) left undelivered for %s by an earlier run", len(rows), self.name)

    def _sendable(self) -> bool:
        """Whether some record may be sent now: journaled, or waiting for the journal too long."""
        with self._state:
            if self._forced or len(self._unsaved) < len(self._outbox):
                return True
            patience = time.monotonic() - JOURNAL_PATIENCE
            return any(since <= patience for since in self._unsaved.values())

    def _pick(self) -> tuple[list[_Entry], bool]:
        """The next batch: a split-off part of a refused batch first, else up to ``max_batch`` records of one table.

        The pick policy (what reaches the backend first when the budget allows
        only one request a quarter second): an update of a run still open that
        waited ``OPEN_RUN_PATIENCE``; else the records of runs that opened or
        ended since their last delivery, in the order they did (so a job's end,
        with its roll-ups, never reaches the backend before the client runs it
        counts); else the oldest record. The batch is that record's table: its
        opened and ended records in that order, then its other sendable
        records riding along. So a finished client run is not held up by its
        job's roll-up update (a record of another table, so a request of its
        own), which goes when no run opened or ended, or after at most
        ``OPEN_RUN_PATIENCE``.
        """
        with self._state:
            while self._forced:
                keys = self._forced.popleft()
                entries = [self._outbox[k] for k in keys if k in self._outbox]
                if entries:
                    return entries, True
            if not self._outbox:
                return [], False
            with self._lock:
                return self._choose(), False

    def _choose(self) -> list[_Entry]:
        """The batch of :meth:`_pick` when no split-off part waits (call with ``_state`` and ``_lock`` held)."""
        # The opened and ended runs, in the order they opened or ended (read under _lock, as submit changes
        # them; no copy, so a pick stays cheap with a large backlog).
        urgent = waiting = self._urgent
        unsaved, patience = self._unsaved, time.monotonic() - JOURNAL_PATIENCE
        overdue = time.monotonic() - OPEN_RUN_PATIENCE
        limit = max(1, self.transport.max_batch)

        def journaled(key: tuple[str, str]) -> bool:
            since = unsaved.get(key)
            return since is None or since <= patience

        # First an update of a run still open that waited too long (looked for among the oldest records
        # only: the pick stays cheap with a large backlog), then the opened and ended runs in the order
        # they opened or ended (a job's end after the client runs it counts, which ended before it), else
        # the oldest record.
        first: _Entry | None = None
        for key, entry in itertools.islice(self._outbox.items(), OVERDUE_LOOKAHEAD):
            if key not in waiting and journaled(key):
                first = entry if entry.since <= overdue else None
                break
        if first is None:
            first = next((e for k in urgent if (e := self._outbox.get(k)) is not None and journaled(k)), None)
        if first is None:
            first = next((e for _, e in self._journaled()), None)
        if first is None:
            return []
        group = (first.row.table, first.row.key_fields)
        batch = [first]
        for key in urgent:
            if len(batch) == limit:
                break
            ended = self._outbox.get(key)
            if (
                ended is not None
                and ended is not first
                and (ended.row.table, ended.row.key_fields) == group
                and journaled(key)
            ):
                batch.append(ended)
        # The table's other records ride along.
        for key, entry in self._journaled():
            if len(batch) == limit:
                break
            if key not in waiting and entry is not first and (entry.row.table, entry.row.key_fields) == group:
                batch.append(entry)
        return batch

    def _journaled(self) -> Iterator[tuple[tuple[str, str], _Entry]]:
        """Outbox records that may go out now, oldest first (call with ``_state`` held).

        Write-ahead: a record goes out once the journal has it (or the journal is stuck).
        """
        unsaved, patience = self._unsaved, time.monotonic() - JOURNAL_PATIENCE
        for key, entry in self._outbox.items():
            since = unsaved.get(key)
            if since is None or since <= patience:
                yield key, entry

    def _send(self, batch: list[_Entry], forced: bool) -> None:
        with self._state:
            sent: list[_Sent] = [(entry, entry.version, dict(entry.row.fields)) for entry in batch]
            with self._lock:
                urgent = {e.key: n for e in batch if (n := self._urgent.get(e.key))}
        unsendable = [(entry, fields, bad) for entry, _, fields in sent if (bad := unsendable_fields(fields))]
        if unsendable:
            # No request could ever carry these (NaN from a journal row, ...): set them aside; the rest of
            # the batch goes with the next one.
            for entry, fields, bad in unsendable:
                reasons = "; ".join(f"{name!r}: {why}" for name, why in bad.items())
                self._set_aside(entry, fields, f"cannot be sent as JSON ({reasons})", list(bad))
            return
        table = batch[0].row.table
        key_fields = batch[0].row.key_fields
        self.stats.requests += 1
        outcome: Outcome
        try:
            outcome = self.transport.send(table, key_fields, [fields for _, _, fields in sent])
        except Exception as exc:
            # A transport that raises on these records: treat it as a refusal (split, then set the one
            # record aside), so it never holds up the others.
            outcome = Refused(None, f"{type(exc).__name__}: {exc}")
        if isinstance(outcome, Delivered):
            self._delivered_ok(sent, urgent)
        elif isinstance(outcome, RetryAfter):
            if outcome.pause_all:
                self._paused(sent, forced, outcome)
            else:
                self._retry_later(sent, forced, outcome)
        else:
            self._refused(sent, outcome)

    def _delivered_ok(self, sent: list[_Sent], urgent: dict[tuple[str, str], int]) -> None:
        self._failures = 0
        with self._state:
            now = time.monotonic()
            for entry, version, _ in sent:
                key = entry.key
                if self._outbox.get(key) is entry and entry.version == version:
                    del self._outbox[key]
                    self._unsaved.pop(key, None)
                else:
                    entry.since = now  # changed meanwhile: the newer change waits from now
                with self._lock:
                    if key in urgent and self._urgent.get(key) == urgent[key]:
                        del self._urgent[key]  # delivered, and its run did not open or end again meanwhile
                # Forgotten in the journal by the journal thread (never on this one: no waiting on SQLite here).
                self._delivered.append((entry.row.table, entry.row.record_key, version))
        self.stats.records_delivered += len(sent)

    # -- failures --------------------------------------------------------------------------

    def _paused(self, sent: list[_Sent], forced: bool, outcome: RetryAfter) -> None:
        """The backend refuses everything for a while (a rate limit): the limiter waits it out, for everyone."""
        self.stats.rate_limited += 1
        self.stats.last_error = redact(outcome.reason)
        self.limiter.penalize(outcome.seconds)
        if forced:
            with self._state:
                self._forced.appendleft([entry.key for entry, _, _ in sent])
        self._log(
            "rate-limit",
            logging.WARNING,
            "jobtrace: rate limit hit for %s (%s); pausing %.0f s as it requires",
            self.name,
            self.stats.last_error,
            outcome.seconds,
        )

    def _refused(self, sent: list[_Sent], outcome: Refused) -> None:
        if len(sent) > 1:
            # Isolate the record the backend refuses; the others must still go through.
            self.stats.batches_split += 1
            keys = [entry.key for entry, _, _ in sent]
            half = len(keys) // 2
            with self._state:
                self._forced.appendleft(keys[half:])
                self._forced.appendleft(keys[:half])
            return
        entry, _, fields = sent[0]
        self._set_aside(entry, fields, outcome.reason, [outcome.field] if outcome.field is not None else [])

    def _retry_later(self, sent: list[_Sent], forced: bool, outcome: RetryAfter) -> None:
        error = redact(outcome.reason)
        self.stats.retries += 1
        self.stats.last_error = error
        self._failures += 1
        if forced:
            with self._state:
                self._forced.appendleft([entry.key for entry, _, _ in sent])
        low, high = self._backoff
        named = outcome.seconds > 0  # the backend says how long (e.g. a token someone has to fix)
        delay = min(high, outcome.seconds) if named else min(high, low * 2 ** min(self._failures - 1, 30))
        delay *= random.uniform(0.8, 1.0)  # spread the retries of several processes
        self._retry_at = time.monotonic() + delay
        self._log(
            "retry-named" if named else "retry",
            logging.ERROR if named else logging.WARNING,
            "jobtrace: writing to %s failed (%s); %d record(s) kept, retrying in %.2f s",
            self.name,
            error,
            self.backlog,
            delay,
        )

    def _set_aside(self, entry: _Entry, fields: dict[str, Any], error: str, refused_fields: list[str]) -> None:
        """This one record cannot be delivered: keep what is refused as undeliverable, deliver the rest.

        ``refused_fields`` names the fields at fault; when none is known, or a
        key field is among them, the whole record is set aside.
        """
        error = redact(error)
        self.stats.set_aside += 1
        self.stats.last_error = error
        row = entry.row
        with self._state:
            if refused_fields and not any(f in row.key_fields for f in refused_fields):
                refused = {k: fields[k] for k in row.key_fields if k in fields}
                refused.update({f: fields[f] for f in refused_fields if f in fields})
                self._guard(
                    self.journal.set_aside,
                    self.destination,
                    self.owner,
                    JournalRow(row.table, row.record_key, row.key_fields, refused),
                    error,
                    None,
                    False,
                )
                for field in refused_fields:
                    # `is` first: NaN is not equal to itself, and must still go.
                    current = row.fields.get(field, _MISSING)
                    if current is fields.get(field) or current == fields.get(field):
                        del row.fields[field]
                    self.set_aside.append(SetAside(row.table, entry.key_values, field, fields.get(field), error))
                entry.version = next(self._versions)
                self._guard(self.journal.save, self.destination, self.owner, [(row, entry.version)])
                what = ", ".join(f"field {f!r}" for f in refused_fields)
            else:
                if self._outbox.get(entry.key) is entry:
                    del self._outbox[entry.key]
                    self._unsaved.pop(entry.key, None)
                    with self._lock:
                        self._urgent.pop(entry.key, None)
                self._guard(self.journal.set_aside, self.destination, self.owner, row, error, entry.version, True)
                self.set_aside.append(SetAside(row.table, entry.key_values, None, dict(fields), error))
                what = "the record"
        logger.error(
            "jobtrace: %s refused %s of record %s in table %r: %s; kept in the journal as "
            "undeliverable (`jobtrace replay` can retry it once the backend accepts it)",
            self.name,
            what,
            entry.label,
            row.table,
            error,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _log(self, kind: str, level: int, message: str, *args: Any) -> None:
        # One line per kind of trouble per minute: an outage must not flood the logs.
        now = time.monotonic()
        if now - self._last_logged.get(kind, -1e9) >= 60.0:
            self._last_logged[kind] = now
            logger.log(level, message, *args)

    def _guard(self, fn: Callable[..., T], *args: Any) -> T | None:
        """Run a journal operation; a broken journal is logged, never fatal to delivery."""
        try:
            return fn(*args)
        except Exception as exc:
            self._log("journal", logging.ERROR, "jobtrace: journal %s failed: %s", self.journal.path, exc)
            return None

    def __repr__(self) -> str:
        return f"<DeliveryEngine {self.name} via {self.transport!r}>"

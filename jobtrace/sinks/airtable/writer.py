"""The background writer: coalesce, journal, batch, throttle, upsert, retry.

``submit()`` (the sink's ``write``) only merges the change's fields into an
in-memory dict under a lock. A daemon thread does the rest, in a loop:

1. *drain* (a thread of its own, every tenth of a second, so a change is
   journaled even while a request is in flight): move pending records into
   the outbox (merging fields, later over earlier) and save them in the
   journal; forget there what was delivered;
2. pick up to 10 records of one table and, when the base's budget
   (:mod:`.budget`, shared with other processes) allows, send them as one
   ``Table.batch_upsert`` (``performUpsert`` on the key fields). Records of
   runs that have just *opened or ended* go first (oldest first; other
   records of the same table ride along), so a new job's record and a
   finished run reach Airtable with the next request; any other update of a
   run still open (a job's roll-ups, a heartbeat) waits for a request with
   none of those to send, or at most ``OPEN_RUN_PATIENCE``. Requests are evenly spaced within the
   budget (by its schedule, which counts the process's other requests to the
   base too);
3. on success, drop them from the outbox and the journal (unless they changed
   meanwhile); on failure, keep them and decide:

   - 429: the base is refused for the penalty (Airtable: 30 s), then retried;
   - 5xx, timeouts, dropped connections: retried after an exponential,
     capped backoff (an upsert is safe to repeat);
   - 400/413/422: the batch is split in halves until the record Airtable
     refuses is alone; then the refused field (or, if it cannot be told, the
     record) is set aside in the journal as undeliverable, logged with its
     run ID and counted; the other records go through;
   - 401/403/404: logged and retried with the longest backoff; the records
     stay journaled for a later start or ``jobtrace replay``;
   - a record no request can carry (a value JSON cannot encode, e.g. NaN in
     a journal row left by an older version), or one the client library
     raises on for any reason that is not the network's: set aside like a
     refused record, so it never holds up the others.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import requests
from pyairtable import Api

from ...errors import SinkError
from ...redaction import redact
from ...values import unsendable_fields
from .journal import Journal, JournalRow, RunEvent, record_key
from .throttle import RequestLimiter, Slot

__all__ = ["MAX_RECORDS_PER_REQUEST", "Writer"]

logger = logging.getLogger("jobtrace")

T = TypeVar("T")

#: Airtable's limit for one write request.
MAX_RECORDS_PER_REQUEST = 10
#: How often, at most, the writer moves new changes to the journal while it waits to send.
DRAIN_INTERVAL = 0.1
#: How long a record waits for the journal before it is sent anyway (a stuck or failing journal).
JOURNAL_PATIENCE = 1.0
#: How often, at most, an idle writer tells the journal it is alive (a dead owner's "last seen").
HEARTBEAT_INTERVAL = 5.0
#: How long an update of a run still open (a job's roll-ups, a heartbeat) may wait, at most, while records of
#: runs that opened or ended go first.
OPEN_RUN_PATIENCE = 2.0
#: How many of the oldest outbox records the pick looks at for one that waited OPEN_RUN_PATIENCE.
OVERDUE_LOOKAHEAD = 50

_FIELD_PATTERNS = (
    re.compile(r'Unknown field name: "(?P<field>.+)"'),
    re.compile(r'Field "(?P<field>.+?)" cannot accept'),
    re.compile(r'field "(?P<field>.+?)"', re.IGNORECASE),
)
_MISSING = object()
_OPTION_PATTERN = re.compile(r'select option "+(?P<value>.*?)"+\s*$')


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
    def label(self) -> str:
        """What a log line names the record by: its key values (the run ID first)."""
        return " / ".join(str(self.row.fields.get(k)) for k in self.row.key_fields)


@dataclass
class WriterStats:
    """Counts since the writer started (read without a lock: good enough for diagnostics)."""

    requests: int = 0
    records_delivered: int = 0
    changes_submitted: int = 0
    rate_limited: int = 0
    retries: int = 0
    batches_split: int = 0
    undeliverable: int = 0
    leftovers_claimed: int = 0
    journal_failures: int = 0
    last_error: str | None = None


class Writer:
    """Delivers one base's record changes from a daemon thread; see the module docstring."""

    def __init__(
        self,
        api: Api,
        base_id: str,
        journal: Journal,
        throttle: RequestLimiter,
        *,
        rate_limit_penalty: float = 30.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        claim_leftovers: bool = True,
    ) -> None:
        self._api = api
        self.base_id = base_id
        self.journal = journal
        self._throttle = throttle
        self._penalty = rate_limit_penalty
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._claim = claim_leftovers
        self.owner = f"{uuid.uuid4().hex}"
        self.stats = WriterStats()
        # _state guards the outbox and the journal rows this writer owns; it is
        # taken before _lock when both are needed, and never held over HTTP.
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
        self._spooler: threading.Thread | None = None
        self._registered = threading.Event()
        self._spool_wake = threading.Event()
        self._owner_lock: Any = None
        self._outbox: dict[tuple[str, str], _Entry] = {}
        self._forced: deque[list[tuple[str, str]]] = deque()
        self._versions = itertools.count(1)
        self._work = threading.Event()
        self._ready = threading.Event()  # set once leftovers are claimed
        self._stop = threading.Event()
        self._progress = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self._alive = False
        self._failures = 0
        self._retry_at = 0.0
        self._last_sent = -1e9
        # The even spacing of requests: the budget's slots (jobtrace's share) over the time each is held.
        hold = float(getattr(throttle, "hold", 1.0))
        share = float(getattr(throttle, "jobtrace_share", 0) or getattr(throttle, "requests_per_second", 5.0))
        self._spacing = hold / max(share, 1e-6)
        self._last_logged: dict[str, float] = {}

    # -- the caller's side -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread (which first claims leftovers of this base from the journal)."""
        if self._thread is not None:
            return
        self._alive = True
        self._thread = threading.Thread(target=self._run, name=f"jobtrace-airtable-{self.base_id}", daemon=True)
        self._thread.start()
        self._spooler = threading.Thread(target=self._spool, name=f"jobtrace-journal-{self.base_id}", daemon=True)
        self._spooler.start()

    def submit(
        self,
        key: Hashable,
        table: str,
        key_fields: tuple[str, ...],
        fields: Mapping[str, Any],
        event: RunEvent | None = None,
    ) -> None:
        """Queue a change of one record: O(1), never blocks on I/O.

        ``event`` notes that the change opened or closed the record's run (the
        journal keeps which runs this owner has open, for dead-run detection).
        """
        with self._lock:
            if self._closed:
                raise SinkError("this AirtableSink is closed; configure a new one")
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

    @property
    def throttle(self) -> RequestLimiter:
        """The base's request budget this writer sends under."""
        return self._throttle

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the writer has claimed the journal's leftovers (True), or ``timeout`` passes."""
        return self._ready.wait(timeout)

    def pending_fields(self, table: str, key: str) -> dict[str, Any]:
        """Fields of one record not yet delivered (outbox, then newer in-memory changes)."""
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

    def idle(self, timeout: float = -1) -> bool:
        """True when nothing is waiting to be delivered (False if that cannot be told within ``timeout``)."""
        if not self._state.acquire(timeout=timeout):
            return False
        try:
            with self._lock:
                return not self._pending and not self._outbox
        finally:
            self._state.release()

    def backlog(self) -> int:
        """Records waiting to be delivered."""
        with self._state, self._lock:
            return len(self._outbox) + len(self._pending)

    def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far is delivered (True) or ``timeout`` passes."""
        deadline = time.monotonic() + max(0.0, timeout)
        self._work.set()
        while True:
            left = deadline - time.monotonic()
            if (self._ready.is_set() or self._thread is None) and self.idle(max(0.0, min(left, DRAIN_INTERVAL))):
                return True
            left = deadline - time.monotonic()
            if left <= 0 or not self._alive:
                return False
            with self._progress:
                self._progress.wait(min(left, DRAIN_INTERVAL))

    def close(self, timeout: float) -> bool:
        """Flush within ``timeout``, stop the threads, journal what is left; True if all was delivered.

        Bounded by ``timeout`` in total, also while another process holds the
        journal's lock (the journal gives up at the same deadline).
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
        thread = self._thread
        for worker in (self._spooler, thread):
            if worker is not None:
                # The sender stops at its next loop turn; one request may still be in flight.
                worker.join(max(0.0, deadline - time.monotonic()))
        if self._journal_order.acquire(timeout=max(0.0, deadline - time.monotonic())):
            try:
                self._drain()
            finally:
                self._journal_order.release()
        if (thread is None or not thread.is_alive()) and not self._unsaved_count():
            self._guard(self.journal.release, self.owner)
            if self._owner_lock is not None:
                self._owner_lock.release()
        if not delivered:
            self._report_left()
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
        left = self.backlog()
        if not left:
            return
        lost = self.not_kept()
        if not lost:
            logger.warning(
                "jobtrace: %d record(s) for Airtable base %s not delivered yet; kept in the journal %s "
                "(delivered on the next start, or run `jobtrace replay`)",
                left,
                self.base_id,
                self.journal.path,
            )
            return
        where = "it lives in memory only" if not self.journal.persistent else f"it failed: {self.stats.last_error}"
        logger.error(
            "jobtrace: %d record(s) for Airtable base %s not delivered; %d kept in the journal %s, %d could NOT be "
            "kept (%s) and are lost",
            left,
            self.base_id,
            left - lost,
            self.journal.path,
            lost,
            where,
        )

    # -- the thread ----------------------------------------------------------------------

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
            logger.exception("jobtrace: the journal thread for base %s stopped on an unexpected error", self.base_id)
        finally:
            self._registered.set()

    def _run(self) -> None:
        try:
            self._registered.wait(30.0)
            if self._claim:
                claimed = self._guard(self.journal.claim, self.base_id, self.owner) or []
                self._adopt(claimed)
            self._ready.set()
            while True:
                if self._spooler is None:
                    self._drain()
                else:
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
                # spacing (0.2 s at 5/s) to be sent, instead of up to a second after a burst.
                now = time.monotonic()
                # Evenly spaced, also a full batch: sent early, it would take a slot the next request then
                # waits for (at a job's start, that left a gap of half a second).
                wait = max(self._retry_at, self._paced()) - now
                slot = None
                if wait <= 0:
                    got = self._throttle.reserve()
                    if isinstance(got, Slot):
                        slot = got
                        self._last_sent = now
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
                    self._throttle.done(slot)
                self._notify()
        except BaseException:
            logger.exception("jobtrace: the Airtable writer for base %s stopped on an unexpected error", self.base_id)
        finally:
            self._alive = False
            self._notify()

    def _paced(self) -> float:
        """When the next request keeps requests evenly spaced: by the budget's schedule, which counts this
        process's other requests to the base too (a job's schema check, its run-ID lookup), else after our last."""
        next_even = getattr(self._throttle, "next_even", None)
        if callable(next_even):
            return float(next_even())
        return self._last_sent + self._spacing

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
                self.journal.save(self.base_id, self.owner, rows, done, events)
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
            self._guard(self.journal.save, self.base_id, self.owner, saved)
        self.stats.leftovers_claimed += len(rows)
        logger.info(
            "jobtrace: delivering %d record(s) left undelivered for Airtable base %s by an earlier run",
            len(rows),
            self.base_id,
        )

    def _sendable(self) -> bool:
        """Whether some record may be sent now: journaled, or waiting for the journal too long."""
        with self._state:
            if self._forced or len(self._unsaved) < len(self._outbox):
                return True
            patience = time.monotonic() - JOURNAL_PATIENCE
            return any(since <= patience for since in self._unsaved.values())

    def _pick(self) -> tuple[list[_Entry], bool]:
        """The next batch: a split-off part of a refused batch first, else up to 10 records of one table.

        The pick policy (what reaches Airtable first when the budget allows
        only one request a quarter second): an update of a run still open that
        waited ``OPEN_RUN_PATIENCE``; else the records of runs that opened or
        ended since their last delivery, in the order they did (so a job's end,
        with its roll-ups, never reaches Airtable before the client runs it
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

        def journaled(key: tuple[str, str]) -> bool:
            since = unsaved.get(key)
            return since is None or since <= patience

        # First an update of a run still open that waited too long (looked for among the oldest records
        # only), then the opened and ended runs in the order
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
            if len(batch) == MAX_RECORDS_PER_REQUEST:
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
            if len(batch) == MAX_RECORDS_PER_REQUEST:
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
            sent = [(entry, entry.version, dict(entry.row.fields)) for entry in batch]
            with self._lock:
                urgent = {k: n for e in batch if (n := self._urgent.get(k := (e.row.table, e.row.record_key)))}
        unsendable = [(entry, fields, bad) for entry, _, fields in sent if (bad := unsendable_fields(fields))]
        if unsendable:
            # No request could ever carry these (NaN from a journal row, ...): set them aside; the rest of
            # the batch goes with the next one.
            for entry, fields, bad in unsendable:
                reasons = "; ".join(f"{name!r}: {why}" for name, why in bad.items())
                self._set_aside(entry, fields, f"cannot be sent as JSON ({reasons})", list(bad))
            return
        table_name = batch[0].row.table
        key_fields = list(batch[0].row.key_fields)
        self.stats.requests += 1
        try:
            self._api.table(self.base_id, table_name).batch_upsert(
                [{"fields": fields} for _, _, fields in sent], key_fields=key_fields, typecast=False
            )
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            self._refused(sent, forced, status, _describe_http_error(exc))
            return
        except requests.RequestException as exc:  # connection refused/dropped, timeouts, a garbled response
            self._retry_later(sent, forced, f"{type(exc).__name__}: {exc}")
            return
        except Exception as exc:
            # Not the network's doing: something in these records that the client cannot send. Treat it as
            # a refusal (split, then set the one record aside), so it never holds up the others.
            self._refused(sent, forced, 400, f"{type(exc).__name__}: {exc}")
            return
        self._failures = 0
        with self._state:
            now = time.monotonic()
            for entry, version, _ in sent:
                key = (entry.row.table, entry.row.record_key)
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
            if self._spooler is None:
                done, self._delivered = self._delivered, []
                self._guard(self.journal.delete, self.base_id, self.owner, done)
        self.stats.records_delivered += len(sent)

    # -- failures --------------------------------------------------------------------------

    def _refused(self, sent: list[tuple[_Entry, int, dict[str, Any]]], forced: bool, status: int, error: str) -> None:
        keys = [(e.row.table, e.row.record_key) for e, _, _ in sent]
        if status == 429:
            self.stats.rate_limited += 1
            self._throttle.penalize(self._penalty)
            if forced:
                self._forced.appendleft(keys)
            self._log(
                "429",
                logging.WARNING,
                "jobtrace: Airtable rate limit hit for base %s; pausing %.0f s as Airtable requires",
                self.base_id,
                self._penalty,
            )
            return
        if status in (400, 413, 422):
            if len(sent) > 1:
                # Isolate the record Airtable refuses; the others must still go through.
                self.stats.batches_split += 1
                half = len(keys) // 2
                with self._state:
                    self._forced.appendleft(keys[half:])
                    self._forced.appendleft(keys[:half])
                return
            entry, _, fields = sent[0]
            self._set_aside(entry, fields, f"HTTP {status}: {error}")
            return
        self._retry_later(sent, forced, f"HTTP {status}: {error}", auth=status in (401, 403, 404))

    def _retry_later(
        self, sent: list[tuple[_Entry, int, dict[str, Any]]], forced: bool, error: str, auth: bool = False
    ) -> None:
        error = redact(error)
        self.stats.retries += 1
        self.stats.last_error = error
        self._failures += 1
        if forced:
            self._forced.appendleft([(e.row.table, e.row.record_key) for e, _, _ in sent])
        if auth:
            delay = self._backoff_max
        else:
            delay = min(self._backoff_max, self._backoff_initial * 2 ** min(self._failures - 1, 30))
        delay *= random.uniform(0.8, 1.0)  # spread retries of several processes
        self._retry_at = time.monotonic() + delay
        self._log(
            "retry-auth" if auth else "retry",
            logging.ERROR if auth else logging.WARNING,
            "jobtrace: writing to Airtable base %s failed (%s); %d record(s) kept, retrying in %.2f s",
            self.base_id,
            error,
            self.backlog(),
            delay,
        )

    def _set_aside(
        self, entry: _Entry, fields: dict[str, Any], error: str, refused_fields: list[str] | None = None
    ) -> None:
        """This one record cannot be delivered: keep what is refused as undeliverable, deliver the rest.

        ``refused_fields`` names the fields at fault; by default the one Airtable's error names (if any).
        When none is known, or a key field is among them, the whole record is set aside.
        """
        error = redact(error)
        self.stats.undeliverable += 1
        self.stats.last_error = error
        if refused_fields is None:
            named = _refused_field(error, fields)
            refused_fields = [named] if named is not None else []
        row = entry.row
        with self._state:
            if refused_fields and not any(f in row.key_fields for f in refused_fields):
                refused = {k: fields[k] for k in row.key_fields if k in fields}
                refused.update({f: fields[f] for f in refused_fields if f in fields})
                self._guard(
                    self.journal.set_aside,
                    self.base_id,
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
                entry.version = next(self._versions)
                self._guard(self.journal.save, self.base_id, self.owner, [(row, entry.version)])
                what = ", ".join(f"field {f!r}" for f in refused_fields)
            else:
                key = (row.table, row.record_key)
                if self._outbox.get(key) is entry:
                    del self._outbox[key]
                    self._unsaved.pop(key, None)
                    with self._lock:
                        self._urgent.pop(key, None)
                self._guard(self.journal.set_aside, self.base_id, self.owner, row, error, entry.version, True)
                what = "the record"
        logger.error(
            "jobtrace: Airtable refused %s of record %s in table %r (base %s): %s; kept in the journal as "
            "undeliverable (`jobtrace replay` can retry it once the base accepts it)",
            what,
            entry.label,
            row.table,
            self.base_id,
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

    @property
    def alive(self) -> bool:
        return self._alive


def _describe_http_error(exc: requests.HTTPError) -> str:
    """Airtable's error type and message (never a header, so never the token)."""
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


def _refused_field(error: str, fields: Mapping[str, Any]) -> str | None:
    """The field an Airtable 422 names (or whose value it names), if it is one of ``fields``."""
    for pattern in _FIELD_PATTERNS:
        match = pattern.search(error)
        if match and match.group("field") in fields:
            return match.group("field")
    match = _OPTION_PATTERN.search(error)
    if match:
        value = match.group("value")
        candidates = [name for name, v in fields.items() if isinstance(v, str) and v == value]
        if len(candidates) == 1:
            return candidates[0]
    return None

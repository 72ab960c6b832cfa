"""Run state: job runs and client runs, their statuses, counters, notes and roll-ups.

A :class:`JobRun` or :class:`ClientRun` is the live state of one record. Every
mutation happens under the run's own lock and submits one entry (the run, the
event, the fields with their new absolute values, the time) to the
dispatcher (:mod:`jobtrace.dispatch`), which turns it into a
:class:`~jobtrace.changes.Change` and hands it to the sinks off the job's
thread. Entries of one record are submitted under its lock to one FIFO queue,
so sinks see the changes of one record in the order they happened, and
counters stay exact when many threads or tasks touch the same run. Locks are
held only for the mutation and the submit, never across user code or sinks.
"""

from __future__ import annotations

import logging
import math
import operator
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any, Final

from . import lifecycle, tracker
from .changes import CLIENT, END, JOB, START, UPDATE, Change, utc_iso
from .dispatch import dispatcher
from .errors import InvalidValueError, NoActiveRunError
from .notes import NOTES_LIMIT, append_note
from .schema import NUMBER_TYPES, Schema, TableSchema
from .statuses import FAILED_STATUSES, Status, status_for_exception
from .values import MAX_NUMBER, check_number, safe_text, whole

__all__ = [
    "FAILED_STATUSES",
    "NOTES_LIMIT",
    "ClientRun",
    "JobRun",
    "JoinedJobRun",
    "Status",
    "status_for_exception",
    "utc_iso",
]

#: Airtable's long-text limit; System Notes never grows past it.
#: How long the end of a job waits, at most, for the dispatcher to hand its changes to the sinks (s).
JOB_END_WAIT: Final = 5.0
#: How often, at most, client completions refresh the job record's roll-ups.
ROLLUP_INTERVAL: Final = 1.0
_NO_KEY: Final[dict[str, Any]] = {}
_MIN_NUMBER: Final = -MAX_NUMBER
_time = time.time
_monotonic = time.monotonic
# Building a Change through tuple.__new__ skips NamedTuple's Python-level __new__: same object, one frame less.
_new_change = tuple.__new__
_submit = dispatcher.submit
_Lock = threading.Lock
_add = operator.add
_sub = operator.sub
_barrier = dispatcher.barrier
_submit_now = dispatcher.submit_now


def _describe(exc: BaseException) -> str:
    text = safe_text(str(exc))
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class _RollupRefresher:
    """Sends job roll-ups the throttle held back, about once a second, from a daemon thread.

    Without it a job that goes on with other work after its last client run
    would show stale roll-ups until it ends. The thread starts on first use and
    only wakes while some job has roll-ups waiting; the hot path only adds a job
    to the waiting set, once per throttle interval.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._waiting: set[JobRun] = set()
        self._thread: threading.Thread | None = None

    def schedule(self, job: JobRun) -> None:
        with self._cond:
            self._waiting.add(job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="jobtrace-rollups", daemon=True)
                self._thread.start()
            self._cond.notify()

    def discard(self, job: JobRun) -> None:
        with self._cond:
            self._waiting.discard(job)

    def refresh_all(self) -> None:
        """Send every held-back roll-up now (``jobtrace.flush()`` calls this first)."""
        with self._cond:
            jobs = list(self._waiting)
            self._waiting.clear()
        for job in jobs:
            job.refresh_rollups()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._waiting:
                    self._cond.wait()
            time.sleep(ROLLUP_INTERVAL)
            try:
                self.refresh_all()
            except Exception:  # a strict sink raising here has no caller to reach
                logging.getLogger("jobtrace").exception("jobtrace: refreshing job roll-ups failed")


_refresher = _RollupRefresher()
tracker.add_flush_hook(_refresher.refresh_all)


class _Run:
    """What job and client runs share: fields, counters, notes, explicit status."""

    __slots__ = (
        "_counters",
        "_ended",
        "_explicit_status",
        "_fields",
        "_key_fields",
        "_lock",
        "_notes",
        "_table",
        "run_id",
    )
    kind: str = ""

    def __init__(self, table: TableSchema, run_id: str, key_fields: dict[str, Any]) -> None:
        self._table = table
        self.run_id = run_id
        self._key_fields = key_fields
        self._lock = threading.Lock()
        self._counters: dict[str, float] = {}
        self._notes = ""
        self._explicit_status: str | None = None
        self._ended = False
        # Every field as this process last wrote or read it (what fields() returns).
        self._fields: dict[str, Any] = {}

    # -- the public verbs ------------------------------------------------------

    def note(self, text: str) -> None:
        """Append a timestamped line to ``System Notes`` (oldest lines go first past 100,000 chars)."""
        notes_field = self._table.names.notes
        if notes_field is None:
            raise InvalidValueError(f"table {self._table.name!r} has no notes field to write to")
        with self._lock:
            self._notes = append_note(self._notes, str(text))
            self._emit(UPDATE, {notes_field: self._notes})

    def incr(self, **amounts: float) -> None:
        """Add to counters, e.g. ``incr(posts_processed=1, token_usage=1500)``."""
        if not amounts:
            return
        lookup = self._table._counter_lookup
        with self._lock:
            counters = self._counters
            # Totals gather in `delta` and reach the counters only once every name and
            # amount passed: an error leaves every counter as it was.
            delta: dict[str, Any] = {}
            for key, amount in amounts.items():
                # The common case: a name incr() knows and an int or float amount (the chained
                # comparison also refuses NaN and infinities, see values.check_number).
                name = lookup.get(key)
                if (
                    name is None
                    or (type(amount) is not int and type(amount) is not float)
                    or not _MIN_NUMBER <= amount <= MAX_NUMBER
                ):
                    name = self._counter_name(key, amount)  # raises for anything but a number field and a number
                total = (delta[name] if name in delta else counters.get(name, 0)) + amount
                if not _MIN_NUMBER <= total <= MAX_NUMBER:
                    check_number(total, f"incr(): the total of {name!r}")  # raises; nothing changed yet
                delta[name] = total
            counters.update(delta)
            if self.kind == CLIENT:
                _submit((self, UPDATE, delta, _time(), None))
            else:
                self._emit(UPDATE, self._with_totals(delta))

    def _counter_name(self, key: str, amount: object) -> str:
        """The counter ``incr(key=amount)`` adds to; raises for anything but a number field and a number."""
        table = self._table
        spec = table.resolve(key)
        if spec.type not in NUMBER_TYPES:
            raise InvalidValueError(
                f"{spec.name!r} of table {table.name!r} is {spec.type}, not a counter; use update({key}=...)"
            )
        check_number(amount, f"incr({key}=...)")
        return spec.name

    def update(self, **fields: Any) -> None:
        """Set fields, e.g. ``update(progress="50% complete", posts_processed=42)``.

        Keys are logical names (``posts_processed``) or Airtable names. ``notes=``
        appends a line like :meth:`note`; ``status=`` records the status the run
        ends with (applied when it ends, unless an exception ends it).
        """
        self._apply(fields)

    def _apply(self, fields: Mapping[str, Any]) -> None:
        table = self._table
        delta: dict[str, Any] = {}
        status: str | None = None
        note: str | None = None
        counters: dict[str, float] = {}
        for key, value in fields.items():
            if key == "status" or key == table.names.status:
                status = table.normalize_status(value)
                continue
            spec = table.resolve(key)
            if spec.name == table.names.notes:
                if value is not None:
                    note = str(value)
                continue
            value = table.check_value(spec, value)
            if spec.type in NUMBER_TYPES:
                # None clears the field; the counter then starts again from 0.
                counters[spec.name] = 0 if value is None else value  # type: ignore[assignment]
            delta[spec.name] = value
        with self._lock:
            if status is not None and status != Status.RUNNING:
                self._explicit_status = status
            self._counters.update(counters)
            if note is not None and table.names.notes is not None:
                self._notes = append_note(self._notes, note)
                delta[table.names.notes] = self._notes
            if delta:
                self._emit(UPDATE, self._with_totals(delta))

    @property
    def ended(self) -> bool:
        """True once the run reached a terminal status."""
        return self._ended

    def fields(self) -> dict[str, Any]:
        """The record as this process knows it: every field read back or written, by Airtable name."""
        _barrier()  # the dispatcher keeps _fields up to date as it turns entries into changes
        snapshot = self._fields.copy()  # one C-level copy: atomic against the dispatcher's update()
        return {k: v for k, v in snapshot.items() if v is not None}

    # -- machinery -------------------------------------------------------------

    def _with_totals(self, delta: dict[str, Any]) -> dict[str, Any]:
        """The values a record shows for counters just set or incremented (lock held)."""
        return delta

    def _emit(self, event: str, fields: dict[str, Any], stamp: str | None = None) -> None:
        # Called with self._lock held (or before the run is shared), so one record's
        # entries enter the FIFO queue, and reach the sinks, in the order they happened.
        # ``stamp`` names a field to set to the change's time (Start Time, End Time):
        # formatting it is left to the dispatcher, as is everything make_change() does.
        _submit((self, event, fields, _time(), stamp))

    def make_change(self, event: str, fields: dict[str, Any], ts: float, stamp: str | None) -> Change:
        """Turn a submitted entry into the Change the sinks get (on the dispatcher's thread)."""
        if stamp is not None:
            fields[stamp] = utc_iso(ts)
        fields.update(self._key_fields)
        self._fields.update(fields)
        return _new_change(Change, (self.kind, event, self._table.name, self.run_id, None, fields, ts))

    def _seed(self, record: Mapping[str, Any] | None) -> None:
        """Continue a resumed run from what a sink still has: counters and notes."""
        if not record:
            return
        self._fields.update(record)
        table = self._table
        for name in table.number_fields:
            value = record.get(name)
            # Any finite float (what Airtable returns), ints as far as they convert: roll-up sums never raise.
            if (type(value) is int and -MAX_NUMBER <= value <= MAX_NUMBER) or (
                type(value) is float and math.isfinite(value)
            ):
                self._counters[name] = value
        notes_field = table.names.notes
        if notes_field is not None and isinstance(record.get(notes_field), str):
            self._notes = record[notes_field]

    def continue_from(self, record: Mapping[str, Any]) -> None:
        """Take over counters and notes from ``record`` (written meanwhile by another process)."""
        with self._lock:
            self._seed(record)

    def _attach(self, record: Mapping[str, Any]) -> None:
        """Continue ``record`` as it stands, without announcing a start; a terminal one stays ended."""
        self._seed(record)
        status = record.get(self._table.names.status)
        if isinstance(status, str) and status != Status.RUNNING:
            self._ended = True

    def _final_fields(self, exc: BaseException | None, default_status: str) -> dict[str, Any]:
        """Status, End Time and error fields for the end of the run (lock held)."""
        names = self._table.names
        fields: dict[str, Any] = {}
        status = status_for_exception(exc, lifecycle.stopping() is not None)
        if exc is None or status is None:
            status = self._explicit_status or default_status
        elif status == Status.FAILED:
            summary = _describe(exc)
            if names.errors is not None:
                fields[names.errors] = summary[:NOTES_LIMIT]
            if names.notes is not None:
                self._notes = append_note(self._notes, f"Failed: {summary}")
                fields[names.notes] = self._notes
        elif names.notes is not None:
            reason = "Cancelled" if status == Status.CANCELLED else lifecycle.describe_interruption(exc)
            self._notes = append_note(self._notes, reason)
            fields[names.notes] = self._notes
        fields[names.status] = self._table.normalize_status(status)
        return fields  # End Time: stamped from the change's time (see _emit)

    def _start_fields(self, resumed: bool) -> dict[str, Any]:
        names = self._table.names
        fields: dict[str, Any] = {names.status: self._table.normalize_status(Status.RUNNING)}
        if resumed:
            # Never an End Time while Running, and no error left over from an earlier attempt.
            if names.end_time is not None:
                fields[names.end_time] = None
            if names.errors is not None:
                fields[names.errors] = None
        return fields  # Start Time: stamped from the change's time unless resumed (see _emit)


class JobRun(_Run):
    """The state of one job run (one ``Job Tracking`` record).

    Use :meth:`update`, :meth:`note` and :meth:`incr`; :func:`jobtrace.tracked_job`
    creates and completes it.
    """

    __slots__ = (
        "__weakref__",
        "_contributions",
        "_dirty",
        "_expected",
        "_failed",
        "_last_client",
        "_last_rollup",
        "_own_progress",
        "_pending",
        "_rollup_names",
        "_rollup_zeros",
        "_seen",
        "_sums",
        "client_completed",
        "client_running",
        "job_type",
        "resumed",
    )
    kind = JOB

    def __init__(
        self,
        schema: Schema,
        run_id: str,
        job_type: str,
        resumed: bool = False,
        attach: Mapping[str, Any] | None = None,
    ) -> None:
        table = schema.job
        super().__init__(table, run_id, {table.names.run_id: run_id})
        self.job_type = job_type
        self.resumed = resumed
        self._rollup_names = schema.rollup_counters
        self._rollup_zeros = (0,) * len(self._rollup_names)
        self.client_completed = schema.client.normalize_status(Status.COMPLETED)
        """The client table's spelling of ``Completed`` (looked up once, not per client run)."""
        self.client_running = schema.client.normalize_status(Status.RUNNING)
        """The client table's spelling of ``Running``."""
        # client_id -> (failed, counter values in _rollup_names order)
        self._contributions: dict[str, tuple[bool, tuple[float, ...]]] = {}
        # Client runs ended and not counted in yet (rollup_values() appends, _fold() counts them in).
        self._pending: deque[tuple[str, bool, tuple[float, ...]]] = deque()
        # Every client counted in or pending: whether a client run continues an earlier one of this job.
        self._seen: set[str] = set()
        # Integers while the counters are: exact sums, and no int-to-float overflow in the roll-ups.
        self._sums: list[float] = [0] * len(self._rollup_names)
        self._last_client: str | None = None
        self._last_rollup = 0.0
        self._dirty = False
        self._failed = 0  # contributions that failed, kept as a count: roll-ups stay O(1) per client
        self._expected: int | None = None
        self._own_progress = False
        if attach is not None:
            # Continue a record as it is (the explicit API): no start, no reopening.
            self._attach(attach)
            return
        record = tracker.read_record(JOB, run_id, None) if resumed else None
        self._seed(record)
        fields = self._start_fields(record is not None)
        if resumed and record is None and table.names.notes is not None:
            # Nothing to continue: a fresh record, with its Start Time, that says why.
            self._notes = append_note(
                self._notes, f"Resume of run {run_id}: no sink found its record, so it started fresh"
            )
            fields[table.names.notes] = self._notes
        if table.names.job_type is not None and job_type:
            fields[table.names.job_type] = job_type
        with self._lock:
            # A job's start is delivered on its own thread, once what is queued is:
            # the job's log line comes before anything its body logs, and in strict
            # mode a sink that cannot take the record fails the job's entry.
            stamp = None if record is not None else table.names.start_time  # a fresh record gets its Start Time
            _submit_now((self, START, fields, _time(), stamp), JOB_END_WAIT)

    def _seed(self, record: Mapping[str, Any] | None) -> None:
        super()._seed(record)
        # Client totals from before the resume stay in the job's own counters,
        # so summing this process's client runs on top of them continues them.
        if record:
            names = self._table.names
            for role in ("clients_processed", "clients_succeeded", "clients_failed"):
                name = getattr(names, role)
                if name is not None and isinstance(record.get(name), (int, float)):
                    self._counters[name] = record[name]

    def expect_clients(self, total: int) -> None:
        """Say how many client runs this job will have, e.g. ``job.expect_clients(50)``.

        The job record's Progress then reads ``"12 of 50 clients, 1 failed"`` as client
        runs end (so Airtable views and ``jobtrace watch`` show a bar), unless the code
        sets Progress itself with ``update(progress=...)``.
        """
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            raise InvalidValueError(f"expect_clients() takes a whole number >= 0, got {total!r}")
        with self._lock:
            self._expected = total
            if self._table.names.progress is not None and not self._own_progress and not self._ended:
                self._emit(UPDATE, {self._table.names.progress: self._progress_text()})

    def update(self, **fields: Any) -> None:
        progress = self._table.names.progress
        if self._expected is not None and ("progress" in fields or (progress is not None and progress in fields)):
            self._own_progress = True
        super().update(**fields)

    def _progress_text(self) -> str:
        self._fold()
        names = self._table.names
        done = len(self._contributions) + int(self._counters.get(names.clients_processed or "", 0))
        failed = self._failed + int(self._counters.get(names.clients_failed or "", 0))
        text = f"{done} of {self._expected} clients"
        return f"{text}, {failed} failed" if failed else text

    def client_state(self, client_id: str) -> tuple[float, ...] | None:
        """The counters a client run of this job ended with last time (to continue them)."""
        if client_id not in self._seen:
            return None
        with self._lock:
            self._fold()
            found = self._contributions.get(client_id)
        return found[1] if found is not None else None

    def adopt(self, client_id: str, failed: bool, counters: Mapping[str, float]) -> None:
        """Take a client run that ended before this run was resumed as one of this run's clients.

        Its share is already in the totals seeded from the job record; moving it
        from there into the per-client contributions keeps the totals as they are,
        and lets the client's new run replace its share instead of adding to it.
        """
        values = tuple(counters.get(name, 0) for name in self._rollup_names)
        names = self._table.names
        with self._lock:
            self._fold()
            if client_id in self._contributions:
                return
            self._seen.add(client_id)
            self._contributions[client_id] = (failed, values)
            if failed:
                self._failed += 1
            seeded = self._counters
            for i, (name, value) in enumerate(zip(self._rollup_names, values)):
                self._sums[i] += value
                seeded[name] = seeded.get(name, 0) - value
            for count in (names.clients_processed, names.clients_failed if failed else names.clients_succeeded):
                if count is not None:
                    seeded[count] = seeded.get(count, 0) - 1

    def rollup(self, client_id: str, failed: bool, counters: Mapping[str, float]) -> None:
        """Count one finished client run into the job's roll-ups (exactly once per client)."""
        self.rollup_values(client_id, failed, tuple([counters.get(name, 0) for name in self._rollup_names]))

    def rollup_values(self, client_id: str, failed: bool, values: tuple[float, ...]) -> None:
        """:meth:`rollup` with the counters already in :attr:`rollup_names` order.

        Takes no lock: the client's share is queued, and counted in (under the
        job's lock, in the order the client runs ended) by whatever reads the
        roll-ups next: the throttled update below, the job's next change, the
        refresher's tick, ``flush()`` or the end of the job.
        """
        self._pending.append((client_id, failed, values))
        self._seen.add(client_id)
        # After the append: whoever clears _dirty does so before folding (so before
        # taking what is pending), so seeing it set means this share will be counted in.
        if self._dirty:
            return  # the refresher's next tick sends it (or the job's next change, flush, the end)
        # At most one roll-up update a second; what is held back goes out with the
        # refresher's next tick (so a busy job's thread never counts its clients in itself),
        # with the job's next change, at flush or at the end.
        now = _monotonic()
        if now - self._last_rollup >= ROLLUP_INTERVAL:
            with self._lock:
                if now - self._last_rollup >= ROLLUP_INTERVAL:
                    self._last_rollup = now
                    self._dirty = False
                    _Run._emit(self, UPDATE, self._rollup_fields())  # JobRun._emit would only re-check _dirty
                    return
        self._dirty = True
        _refresher.schedule(self)

    def _fold(self) -> None:
        """Count the pending client runs into the roll-ups, in the order they ended (lock held)."""
        pending = self._pending
        if not pending:
            return
        contributions = self._contributions
        popleft = pending.popleft
        sums = self._sums
        failures = self._failed
        client_id = None
        while pending:
            client_id, failed, values = popleft()
            previous = contributions.get(client_id)
            contributions[client_id] = (failed, values)
            if previous is not None:
                if previous[0]:
                    failures -= 1
                sums = list(map(_sub, sums, previous[1]))
            if failed:
                failures += 1
            sums = list(map(_add, sums, values))
        self._sums = sums
        self._failed = failures
        self._last_client = client_id

    def refresh_rollups(self) -> None:
        """Send the roll-ups held back by the throttle, if any (the refresher calls this)."""
        with self._lock:
            if self._dirty and not self._ended:
                self._last_rollup = _monotonic()
                self._dirty = False
                _Run._emit(self, UPDATE, self._rollup_fields())

    def _rollup_fields(self) -> dict[str, Any]:
        self._fold()
        names = self._table.names
        counters = self._counters
        fields: dict[str, Any] = {}
        failed = self._failed
        processed = len(self._contributions)
        if self._expected is not None and not self._own_progress and names.progress is not None:
            fields[names.progress] = self._progress_text()
        name = names.clients_processed
        if name is not None:
            fields[name] = counters.get(name, 0) + processed
        name = names.clients_succeeded
        if name is not None:
            fields[name] = counters.get(name, 0) + processed - failed
        name = names.clients_failed
        if name is not None:
            fields[name] = counters.get(name, 0) + failed
        if names.last_client_processed is not None and self._last_client is not None:
            fields[names.last_client_processed] = self._last_client
        for name, total in zip(self._rollup_names, self._sums):
            fields[name] = whole(counters.get(name, 0) + total)
        return fields

    def _with_totals(self, delta: dict[str, Any]) -> dict[str, Any]:
        # The job's own value of a rolled-up counter is shown plus its clients' sum,
        # as _rollup_fields() does; else the field would drop back until the next roll-up.
        self._fold()
        for name, total in zip(self._rollup_names, self._sums):
            value = delta.get(name)
            if value is not None:
                delta[name] = whole(value + total)
        return delta

    def _emit(self, event: str, fields: dict[str, Any], stamp: str | None = None) -> None:
        if self._dirty and event == UPDATE:
            self._dirty = False
            fields = {**self._rollup_fields(), **fields}
        _submit((self, event, fields, _time(), stamp))

    def finish(self, exc: BaseException | None) -> None:
        """End the run: the terminal status, End Time and final roll-ups."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
            self._fold()
            failed = self._failed > 0
            # A resumed run's earlier clients count too (they live in the seeded counter).
            failed_name = self._table.names.clients_failed
            failed = failed or (failed_name is not None and self._counters.get(failed_name, 0) > 0)
            fields = self._rollup_fields() if self._contributions or self._counters else {}
            fields.update(self._final_fields(exc, Status.COMPLETED_WITH_ERRORS if failed else Status.COMPLETED))
            was_dirty, self._dirty = self._dirty, False
            # A job's end is a sync point: it is handed to the sinks on this thread once
            # everything queued before it has been (under the job's lock, so no change of
            # this record can slip in between). Once tracked_job returns, every change of
            # the run has reached the sinks (their own delivery, e.g. to Airtable, goes on
            # in the background). Bounded: past JOB_END_WAIT the end is queued instead.
            _submit_now((self, END, fields, _time(), self._table.names.end_time), JOB_END_WAIT)
        if was_dirty:
            _refresher.discard(self)  # its roll-ups went out with the end; don't keep it alive

    def remaining(self, client_ids: Iterable[str]) -> list[str]:
        """Those of ``client_ids`` without a completed client run in this run (what a resumed run redoes).

        See :func:`jobtrace.resume.remaining`.
        """
        from .resume import remaining

        return remaining(self, client_ids)

    def client_outcomes(self) -> dict[str, bool]:
        """Client runs this process counted into the job: client ID -> failed."""
        with self._lock:
            self._fold()
            return {client: failed for client, (failed, _) in self._contributions.items()}

    def __repr__(self) -> str:
        return f"<JobRun {self.run_id} {self.job_type!r}{' ended' if self._ended else ''}>"


class JoinedJobRun(JobRun):
    """A job run owned by another process, joined here (``JOBTRACE_RUN_ID``, :func:`jobtrace.extract`).

    Client runs started under it use its run ID; its record belongs to the
    owner, so this process never creates, updates or completes it: job-level
    writes raise ``NoActiveRunError`` (they would race with the owner's absolute
    values), and client completions are not rolled up here (the owner counts
    them with :func:`jobtrace.collect`).
    """

    __slots__ = ("parent_client_id",)

    def __init__(self, schema: Schema, run_id: str, job_type: str = "", parent_client_id: str | None = None) -> None:
        super().__init__(schema, run_id, job_type, attach={})
        self.parent_client_id = parent_client_id
        """The client run the owner was in when it handed the run over, if any."""

    def _refuse(self, verb: str) -> NoActiveRunError:
        return NoActiveRunError(
            f"job.{verb}(): run {self.run_id} is owned by another process (joined through "
            f"JOBTRACE_RUN_ID or jobtrace.extract), which alone writes its job record; write to a "
            f"client_run here, or report back to the owner"
        )

    def note(self, text: str) -> None:
        raise self._refuse("note")

    def incr(self, **amounts: float) -> None:
        raise self._refuse("incr")

    def update(self, **fields: Any) -> None:
        raise self._refuse("update")

    def rollup(self, client_id: str, failed: bool, counters: Mapping[str, float]) -> None:
        """Not counted here: the owning process rolls client runs up (``jobtrace.collect``)."""

    def rollup_values(self, client_id: str, failed: bool, values: tuple[float, ...]) -> None:
        """Not counted here either."""

    def finish(self, exc: BaseException | None) -> None:
        """Leaves the record alone: the owning process completes it."""
        self._ended = True

    def __repr__(self) -> str:
        return f"<JoinedJobRun {self.run_id}>"


class ClientRun(_Run):
    """The state of one client's run within a job (one ``Client Run Results`` record)."""

    __slots__ = ("_entries", "_first_exc", "client_id", "job", "name")
    kind = CLIENT

    def __init__(
        self,
        schema: Schema,
        run_id: str,
        client_id: str,
        name: str | None = None,
        job: JobRun | None = None,
        attach: Mapping[str, Any] | None = None,
    ) -> None:
        table = schema.client
        names = table.names
        # _Run.__init__, inlined (one call less on the hot path). The key fields
        # ({Run ID: "<run>-<client>", Client ID}) are made by make_change(), off
        # the job's thread; so is everything else a Change needs.
        self._table = table
        self.run_id = run_id
        self._key_fields = _NO_KEY
        self._lock = _Lock()
        self._counters = {}
        self._notes = ""
        self._explicit_status = None
        self._ended = False
        self._fields = {}
        self._entries = 1  # client_run() blocks in it at once (join/leave)
        self._first_exc: BaseException | None = None
        self.client_id = client_id
        self.name = name
        self.job = job
        if attach is None and name is None and job is not None and not job.resumed and client_id not in job._seen:
            # The common case, kept short: a new client run of a job this process runs.
            _submit((self, START, {names.status: job.client_running}, _time(), names.start_time))
            return
        if attach is not None:
            # Continue a record as it is (the explicit API, a child process): no start.
            self._attach(attach)
            return
        resumed = False
        if job is not None:
            previous = job.client_state(client_id)
            if previous is not None:
                resumed = True
                self._counters.update(zip(job._rollup_names, previous))
            elif job.resumed:
                # A client the run's earlier part already ran: continue its record,
                # and let this run replace what it contributed to the job's totals.
                record = tracker.read_record(CLIENT, run_id, client_id)
                if record is not None:
                    resumed = True
                    self._seed(record)
                    status = record.get(names.status)
                    # Running (its process died) and Interrupted runs were never rolled up.
                    if isinstance(status, str) and status not in (Status.RUNNING, Status.INTERRUPTED):
                        job.adopt(client_id, status in FAILED_STATUSES, self._counters)
        else:
            # Attached to a run this process does not own (a webhook, a resume
            # script): continue what the record already holds.
            record = tracker.read_record(CLIENT, run_id, client_id)
            if record is not None:
                resumed = True
                self._seed(record)
        fields = self._start_fields(resumed)
        if name is not None and names.client_name is not None:
            fields[names.client_name] = safe_text(name) if isinstance(name, str) else name
        # No lock: no other thread can reach this run before __init__ returns.
        _submit((self, START, fields, _time(), None if resumed else names.start_time))

    def make_change(self, event: str, fields: dict[str, Any], ts: float, stamp: str | None) -> Change:
        if stamp is not None:
            fields[stamp] = utc_iso(ts)
        key = self._key_fields
        if key is _NO_KEY:  # made once, by the dispatcher's thread (only it reads it)
            names = self._table.names
            key = {names.run_id: f"{self.run_id}-{self.client_id}"}
            if names.client_id is not None:
                key[names.client_id] = self.client_id
            self._key_fields = key
        fields.update(key)
        self._fields.update(fields)
        return _new_change(Change, (CLIENT, event, self._table.name, self.run_id, self.client_id, fields, ts))

    def finish(self, exc: BaseException | None) -> None:
        """End the client run and count it into its job's roll-ups."""
        with self._lock:
            rollup = self._end(exc)
        if rollup is not None:
            self.job.rollup_values(self.client_id, *rollup)  # type: ignore[union-attr]

    def join(self) -> bool:
        """Enter this run once more (a second ``client_run()`` of a client live here); False once it is ending."""
        with self._lock:
            if self._entries == 0:
                return False
            self._entries += 1
            return True

    def leave(self, exc: BaseException | None, live: dict[Any, Any]) -> None:
        """Leave one entry; the last one ends the run (Failed if any entry raised) and drops it from ``live``.

        All under the run's lock, the roll-up included: an entry that comes in
        meanwhile finds the run ending (:meth:`join` says False) and waits for a
        run of its own until this one is counted into the job, so that it
        continues from this run's counters and the job counts the client once.
        """
        with self._lock:
            try:
                self._entries -= 1
                if exc is not None and self._first_exc is None:
                    self._first_exc = exc
                if self._entries > 0:
                    return
                rollup = self._end(self._first_exc)
                if rollup is not None:
                    self.job.rollup_values(self.client_id, *rollup)  # type: ignore[union-attr]
            finally:
                if self._entries <= 0:
                    key = (self.run_id, self.client_id)
                    if live.get(key) is self:
                        del live[key]

    def _end(self, exc: BaseException | None) -> tuple[bool, tuple[float, ...]] | None:
        """Submit the end (lock held); what to count into the job's roll-ups (failed, values), if anything."""
        if self._ended:
            return None
        self._ended = True
        table = self._table
        job = self.job
        if exc is None and self._explicit_status is None and job is not None:
            _submit((self, END, {table.names.status: job.client_completed}, _time(), table.names.end_time))
            return False, tuple(map(self._counters.get, job._rollup_names, job._rollup_zeros))
        fields = self._final_fields(exc, Status.COMPLETED)
        status = fields[table.names.status]
        _submit((self, END, fields, _time(), table.names.end_time))
        # A client run the stopping process interrupted did not fail, nor finish: it is not counted
        # (a resumed run redoes it, see job.remaining()).
        if job is None or (status == Status.INTERRUPTED and lifecycle.stopping()):
            return None
        return status in FAILED_STATUSES, tuple(map(self._counters.get, job._rollup_names, job._rollup_zeros))

    def __repr__(self) -> str:
        return f"<ClientRun {self.run_id}-{self.client_id}{' ended' if self._ended else ''}>"

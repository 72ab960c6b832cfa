"""The hand-off of record changes to sinks, off the job's thread.

A record (:mod:`jobtrace.records`) does its bookkeeping on the job's thread and
then *submits* what changed: a small tuple appended to one process-wide FIFO
queue (``collections.deque.append``, atomic, no lock). One daemon thread, the
dispatcher, pops the entries in order, turns each into a
:class:`~jobtrace.changes.Change` and hands it to every sink. So:

- one record's changes reach every sink in the order they happened (a record
  submits under its own lock, and the queue is FIFO with one consumer);
- the job's thread never runs sink code: a slow or failing sink cannot slow
  or break the job;
- :meth:`Dispatcher.barrier` waits until everything submitted before the call
  has been handed to the sinks. ``jobtrace.flush()``, ``diagnostics()``,
  ``configure()``/``restore()``, resuming a run, ``MemorySink`` reads and
  ``JobRun.fields()``/``ClientRun.fields()`` call it, so code reads what it wrote;
- a job's start and end are handed to the sinks on the job's thread, after
  what is queued (:meth:`Dispatcher.submit_now`): once ``tracked_job`` has
  returned, every change of the run has reached the sinks;
- at interpreter exit (and at ``jobtrace.shutdown()``) the queue is drained
  before the sinks are closed, within the exit bound.

In *inline* mode (``configure(strict=True)``, for tests) an entry is handed
to the sinks on the submitting thread instead, so a sink error raises
``SinkError`` at the call that caused it.

The job's thread pays one ``deque.append`` and one attribute read per change.
After draining the queue the dispatcher polls it every ``POLL_INTERVAL`` for
``LINGER`` seconds before it sleeps for good, so a busy job never pays for
waking it (an ``Event.set()``, several times the cost of the append); a
barrier wakes it at once. Delivery lags the job by at most about
``POLL_INTERVAL`` while the job is busy.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Final

__all__ = ["Dispatcher", "Entry", "dispatcher"]

logger = logging.getLogger("jobtrace")

Entry = tuple[Any, ...]
"""What a record submits; the dispatcher hands it, unchanged, to its ``deliver`` callable."""

Deliver = Callable[[list[Entry]], None]
"""Delivers a batch of entries, in order (the tracker's fan-out to the configured sinks)."""

#: The most entries the dispatcher hands over in one batch.
MAX_BATCH: Final = 1024

#: How long a barrier waits by default, in seconds.
BARRIER_TIMEOUT: Final = 30.0
#: How often the dispatcher looks at an empty queue while lingering, in seconds.
POLL_INTERVAL: Final = 0.002
#: How long it lingers after the queue ran empty before it sleeps until woken, in seconds.
LINGER: Final = 0.05


class Dispatcher:
    """One FIFO queue of entries and the daemon thread that delivers them, in order."""

    def __init__(self, deliver: Deliver | None = None) -> None:
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._sleeping = True
        self._busy = False
        self._markers = 0  # barrier markers in the queue: the dispatcher looks for them only when there are some
        self._thread: threading.Thread | None = None
        self._thread_ident: int | None = None
        self._start_lock = threading.Lock()
        self._deliver: Deliver = deliver if deliver is not None else _unset
        self.inline = False
        """Deliver on the submitting thread (strict mode) instead of the dispatcher thread."""
        self.delivered = 0
        """Entries handed to ``deliver`` so far (either mode)."""

    def set_deliver(self, deliver: Deliver) -> None:
        """Set what delivering an entry means (the tracker's fan-out to the configured sinks)."""
        self._deliver = deliver

    # -- the hot path ------------------------------------------------------------------

    def submit(self, entry: Entry) -> None:
        """Queue ``entry`` for delivery (or deliver it now, in inline mode). Thread-safe, O(1)."""
        if self.inline:
            self.delivered += 1
            self._deliver([entry])
            return
        self._queue.append(entry)
        if self._sleeping:
            self._wake_up()

    def submit_now(self, entry: Entry, timeout: float | None = BARRIER_TIMEOUT) -> None:
        """Deliver ``entry`` on this thread, after everything queued before it.

        For a job's start and end: the caller holds the record's lock (or the
        record is not shared yet), so no other change of it can come between
        the barrier and the delivery, and every record's order is kept; a sink
        error (strict mode) reaches the caller. When the queue does not drain
        within ``timeout`` (a hung sink), the entry is queued instead: the
        caller never waits longer, and never calls the hung sink itself.
        """
        if not self.inline and not self.barrier(timeout):
            self._queue.append(entry)
            return
        self.delivered += 1
        self._deliver([entry])

    # -- barriers and draining -----------------------------------------------------------

    def barrier(self, timeout: float | None = BARRIER_TIMEOUT) -> bool:
        """Wait until every entry submitted before this call has been delivered; False on timeout.

        Called from the dispatcher thread itself (a sink reading back while it
        delivers), it returns at once: that thread cannot wait for itself.
        """
        if threading.get_ident() == self._thread_ident:
            return True
        if not self._queue and not self._busy:
            return True  # nothing queued, nothing being delivered (_busy is set before each pop)
        marker = threading.Event()
        with self._start_lock:
            self._markers += 1
        self._queue.append(marker)
        self._wake_up()
        return marker.wait(timeout)

    @property
    def backlog(self) -> int:
        """Entries queued and not yet delivered (approximate while changes arrive)."""
        return sum(1 for item in list(self._queue) if not isinstance(item, threading.Event))

    # -- machinery ---------------------------------------------------------------------

    def _wake_up(self) -> None:
        if self._thread is None:  # the thread lives as long as the process (a fork resets it)
            with self._start_lock:
                if self._thread is None:
                    self._sleeping = False
                    thread = threading.Thread(target=self._run, name="jobtrace-dispatcher", daemon=True)
                    self._thread = thread
                    thread.start()
                    return
        self._wake.set()

    def _run(self) -> None:
        self._thread_ident = threading.get_ident()
        queue = self._queue
        popleft = queue.popleft
        wake = self._wake
        marker_type = threading.Event
        polls = max(1, int(LINGER / POLL_INTERVAL))
        idle = 0
        while True:
            self._busy = True  # before the pops: a barrier that sees the queue empty then sees us busy
            if not queue:
                self._busy = False
                if idle < polls:
                    # Linger: submit() does not wake us meanwhile (_sleeping stays False).
                    idle += 1
                    wake.wait(POLL_INTERVAL)
                    wake.clear()
                    continue
                # Sleep until submit() sees _sleeping and wakes us; re-check after
                # announcing it, so an entry appended just before is not left behind.
                self._sleeping = True
                if not queue:
                    wake.wait()
                wake.clear()
                self._sleeping = False
                idle = 0
                continue
            idle = 0
            # Take what is queued (up to MAX_BATCH) and hand it over as one batch; a
            # barrier's marker ends the batch, and is set once what came before it is delivered.
            batch = [popleft() for _ in range(min(len(queue), MAX_BATCH))]
            markers: list[Any] = []
            if self._markers:
                cut = next((i for i, item in enumerate(batch) if type(item) is marker_type), None)
                if cut is not None:
                    rest = batch[cut + 1 :]
                    markers.append(batch[cut])
                    batch = batch[:cut]
                    queue.extendleft(reversed(rest))  # back to the front, in order, before anything newer
                    with self._start_lock:
                        self._markers -= 1
            if batch:
                self.delivered += len(batch)
                try:
                    self._deliver(batch)  # looked up each time: set_deliver() may change it
                except BaseException:  # never let one bad batch stop delivery of the rest
                    logger.exception("jobtrace: delivering %d changes failed", len(batch))
            for marker in markers:
                marker.set()

    def _after_fork_in_child(self) -> None:
        # The thread did not survive the fork, and what the parent had queued is the
        # parent's to deliver: a child must not send it a second time.
        self._queue = deque()
        self._wake = threading.Event()
        self._sleeping = True
        self._busy = False
        self._markers = 0
        self._thread = None
        self._thread_ident = None
        self._start_lock = threading.Lock()


def _unset(entries: list[Entry]) -> None:  # pragma: no cover - replaced by the tracker at import
    raise RuntimeError("jobtrace dispatcher has no delivery function")


dispatcher: Final = Dispatcher()
"""The process's dispatcher (the tracker sets its delivery; records submit to it)."""

if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=dispatcher._after_fork_in_child)

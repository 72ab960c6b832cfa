"""Pacing: the limiter interface the delivery engine sends under, and an in-process limiter.

Many backends refuse a client that sends too fast (Airtable answers a sixth
request within a second with 429 and then refuses the base for 30 seconds),
so the engine takes a *slot* from a :class:`RequestLimiter` before every
request and hands it back once the answer is in. :class:`Throttle` is the
simplest limiter, one process's sliding window; the AirtableSink's shared
per-base budget (:class:`jobtrace.sinks.airtable.Budget`) implements the same
interface across processes and hosts.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

__all__ = ["WINDOW_MARGIN", "EvenSchedule", "RequestLimiter", "Slot", "Throttle", "wait_for_slot"]

#: Clock granularity allowance added to the one-second window.
WINDOW_MARGIN = 0.02


class Slot:
    """One request's place in the window; :meth:`Throttle.done` stamps its end."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended: float | None = None


class RequestLimiter(Protocol):
    """What a request budget offers: a slot per request, held until after its response; a penalty after 429.

    ``spacing`` is the even gap, in seconds, between requests that use the
    budget's share without bursts; ``next_even()`` is when
    (``time.monotonic()``) the next request keeps the requests taken through
    this limiter evenly spaced: every slot taken moves it on by ``spacing``.
    The engine waits for it before asking for a slot, so a change waits at
    most about one gap to be sent, and a burst of other requests (a job's
    start) is followed by evenly spaced ones, not by a second burst.
    """

    @property
    def spacing(self) -> float: ...

    def next_even(self) -> float: ...

    def reserve(self) -> Slot | float: ...

    def acquire(self, timeout: float | None = None) -> Slot | None: ...

    def done(self, slot: Slot) -> None: ...

    def penalize(self, seconds: float) -> None: ...


class EvenSchedule:
    """A virtual schedule that keeps one sender's requests evenly spaced (a limiter's ``next_even()``).

    Every slot taken moves it on by the spacing from then, or from where it was if that is later.
    Thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._next = -math.inf

    def next(self) -> float:
        """When (``time.monotonic()``) the next request keeps the requests evenly spaced."""
        with self._lock:
            return self._next

    def taken(self, spacing: float, now: float | None = None) -> None:
        """A slot was taken at ``now`` (default: now): the next request is due ``spacing`` seconds on."""
        with self._lock:
            self._next = max(self._next, time.monotonic() if now is None else now) + spacing


def wait_for_slot(reserve: Callable[[], Slot | float], timeout: float | None) -> Slot | None:
    """Call ``reserve`` (a slot, or the seconds to wait before asking again) until it gives a slot.

    Returns None once ``timeout`` seconds (None: no limit) have passed without one.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        got = reserve()
        if isinstance(got, Slot):
            return got
        wait = got
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            wait = min(wait, left)
        time.sleep(wait)


class Throttle:
    """A sliding-window limiter for one base, plus a penalty after a 429. Thread-safe.

    A request occupies its slot from the moment it is sent until one second
    after its response came back. Airtable counts a request when it arrives,
    which is between the two, so however long the network takes, no more than
    ``requests_per_second`` requests can arrive within any second.
    """

    def __init__(self, requests_per_second: float = 5.0) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        self._lock = threading.Lock()
        self._slots: deque[Slot] = deque()
        self._rate = requests_per_second
        self._blocked_until = 0.0
        self._schedule = EvenSchedule()

    @property
    def requests_per_second(self) -> float:
        return self._rate

    @requests_per_second.setter
    def requests_per_second(self, value: float) -> None:
        if value <= 0:
            raise ValueError("requests_per_second must be positive")
        with self._lock:
            self._rate = value

    @property
    def spacing(self) -> float:
        """Seconds between evenly spaced requests at this rate."""
        return 1.0 / self._rate

    def next_even(self) -> float:
        """When the next request keeps this throttle's requests evenly spaced (see :class:`RequestLimiter`)."""
        return self._schedule.next()

    def reserve(self) -> Slot | float:
        """Take a slot (call :meth:`done` with it after the response), or return seconds to wait."""
        now = time.monotonic()
        with self._lock:
            if now < self._blocked_until:
                return self._blocked_until - now
            rate = self._rate
            window = (1.0 + WINDOW_MARGIN) * max(1.0, 1.0 / rate)
            per_window = max(1, int(rate))
            slots = self._slots
            while slots and slots[0].ended is not None and slots[0].ended <= now - window:
                slots.popleft()
            busy = [s for s in slots if s.ended is None or s.ended > now - window]
            if len(busy) >= per_window:
                ended = [s.ended for s in busy if s.ended is not None]
                # All in flight: ask again shortly; else when the oldest finished one leaves the window.
                return max(0.001, min(ended) + window - now) if ended else 0.05
            slot = Slot()
            slots.append(slot)
            self._schedule.taken(1.0 / rate, now)
            return slot

    def done(self, slot: Slot) -> None:
        """The request of ``slot`` got its answer (or failed): its window starts now."""
        slot.ended = time.monotonic()

    def acquire(self, timeout: float | None = None) -> Slot | None:
        """Block until a slot is taken (returned) or ``timeout`` seconds pass (None)."""
        return wait_for_slot(self.reserve, timeout)

    def penalize(self, seconds: float) -> None:
        """Refuse every request to the base for ``seconds`` (Airtable's penalty after a 429)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    @property
    def blocked_for(self) -> float:
        """Seconds left in the penalty box (0 when free)."""
        return max(0.0, self._blocked_until - time.monotonic())

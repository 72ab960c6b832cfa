"""Client-side rate limiting within one process, and the interface every request budget offers.

Airtable answers a sixth request within a second with 429 and then refuses
the base for 30 seconds, so a sink that merely retries 429s loses half a
minute each time. Every request jobtrace makes to a base (writes, reads, the
schema check, replays) first takes a slot from that base's budget. The budget
jobtrace uses is shared by every process of a host, and of every host with
Redis (:mod:`.budget`); :class:`Throttle` is the same rule kept in one
process's memory, and :class:`RequestLimiter` is what the writer needs of either.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .budget import Budget

__all__ = ["RequestLimiter", "Slot", "Throttle", "throttle_for"]

#: Clock granularity allowance added to the one-second window.
WINDOW_MARGIN = 0.02


class Slot:
    """One request's place in the window; :meth:`Throttle.done` stamps its end."""

    __slots__ = ("ended",)

    def __init__(self) -> None:
        self.ended: float | None = None


class RequestLimiter(Protocol):
    """What a request budget offers: a slot per request, held until after its response; a penalty after 429."""

    def reserve(self) -> Slot | float: ...

    def acquire(self, timeout: float | None = None) -> Slot | None: ...

    def done(self, slot: Slot) -> None: ...

    def penalize(self, seconds: float) -> None: ...


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

    @property
    def requests_per_second(self) -> float:
        return self._rate

    @requests_per_second.setter
    def requests_per_second(self, value: float) -> None:
        if value <= 0:
            raise ValueError("requests_per_second must be positive")
        with self._lock:
            self._rate = value

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
            return slot

    def done(self, slot: Slot) -> None:
        """The request of ``slot`` got its answer (or failed): its window starts now."""
        slot.ended = time.monotonic()

    def acquire(self, timeout: float | None = None) -> Slot | None:
        """Block until a slot is taken (returned) or ``timeout`` seconds pass (None)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            got = self.reserve()
            if isinstance(got, Slot):
                return got
            wait = got
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                wait = min(wait, left)
            time.sleep(wait)

    def penalize(self, seconds: float) -> None:
        """Refuse every request to the base for ``seconds`` (Airtable's penalty after a 429)."""
        with self._lock:
            self._blocked_until = max(self._blocked_until, time.monotonic() + seconds)

    @property
    def blocked_for(self) -> float:
        """Seconds left in the penalty box (0 when free)."""
        return max(0.0, self._blocked_until - time.monotonic())


def throttle_for(endpoint_url: str, base_id: str, requests_per_second: float = 5.0) -> Budget:
    """The base's shared budget (:func:`.budget.budget_for`), jobtrace's share of it; kept for older callers."""
    from .budget import budget_for

    return budget_for(endpoint_url, base_id, requests_per_second=requests_per_second)

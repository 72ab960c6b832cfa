"""Client-side rate limiting: stay under Airtable's 5 requests per second per base.

Airtable answers a sixth request within a second with 429 and then refuses
the base for 30 seconds, so a sink that merely retries 429s loses half a
minute each time. Every request jobtrace makes to a base (writes, reads, the
schema check, replays) first takes a slot from that base's :class:`Throttle`,
shared process-wide, and a 429 (from another process on the same base) puts
the whole base in the penalty box here too.
"""

from __future__ import annotations

import threading
import time
from collections import deque

__all__ = ["Throttle", "throttle_for"]

#: Airtable counts requests per second at its end; requests leave here a little
#: earlier or later than they arrive there, so the window is widened by this much.
WINDOW_MARGIN = 0.1


class Throttle:
    """A sliding-window limiter for one base, plus a penalty after a 429. Thread-safe."""

    def __init__(self, requests_per_second: float = 5.0) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        self._lock = threading.Lock()
        self._sent: deque[float] = deque()
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

    def reserve(self) -> float:
        """Take a slot now and return 0, or return how many seconds to wait before asking again."""
        now = time.monotonic()
        with self._lock:
            if now < self._blocked_until:
                return self._blocked_until - now
            window = (1.0 + WINDOW_MARGIN) * max(1.0, 1.0 / self._rate)
            per_window = max(1, int(self._rate)) if self._rate >= 1 else 1
            sent = self._sent
            while sent and sent[0] <= now - window:
                sent.popleft()
            if len(sent) >= per_window:
                return max(0.001, sent[0] + window - now)
            sent.append(now)
            return 0.0

    def acquire(self, timeout: float | None = None) -> bool:
        """Block until a slot is taken (True) or ``timeout`` seconds pass (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = self.reserve()
            if wait == 0.0:
                return True
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
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


_registry_lock = threading.Lock()
_registry: dict[tuple[str, str], Throttle] = {}


def throttle_for(endpoint_url: str, base_id: str, requests_per_second: float = 5.0) -> Throttle:
    """The process-wide throttle of one base (created on first use; the lowest rate asked for wins)."""
    key = (endpoint_url.rstrip("/"), base_id)
    with _registry_lock:
        found = _registry.get(key)
        if found is None:
            found = _registry[key] = Throttle(requests_per_second)
        elif requests_per_second < found.requests_per_second:
            found.requests_per_second = requests_per_second
        return found

"""Airtable's per-base rate limit: 5 requests per second, then 30 s of 429s.

A sliding one-second window per base: a request that would be one more than
``requests_per_second`` in the last second is refused, and so is every
request to that base for the next ``penalty`` seconds. Refused requests do
not count towards the window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Thread-safe per-key (base ID) sliding-window limiter with a penalty box."""

    def __init__(
        self,
        requests_per_second: float = 5.0,
        penalty: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        if penalty < 0:
            raise ValueError("penalty must not be negative")
        self.requests_per_second = requests_per_second
        self.penalty = penalty
        self._clock = clock
        self._lock = threading.Lock()
        self._windows: dict[str, deque[float]] = {}
        self._refused_until: dict[str, float] = {}

    def allow(self, key: str) -> bool:
        """Count a request for ``key``; False if it must be refused with 429."""
        now = self._clock()
        with self._lock:
            if now < self._refused_until.get(key, 0.0):
                return False
            window = self._windows.setdefault(key, deque())
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) + 1 > self.requests_per_second:
                self._refused_until[key] = now + self.penalty
                window.clear()
                return False
            window.append(now)
            return True

    def reset(self) -> None:
        """Forget all windows and penalties."""
        with self._lock:
            self._windows.clear()
            self._refused_until.clear()

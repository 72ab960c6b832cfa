"""Fault injection: make the next N matching requests fail the way Airtable can.

:meth:`AirtableEmulator.inject` adds a :class:`FaultRule`; the request handler
asks :meth:`FaultPlan.take` for each incoming request and honours the first
rule that matches, consuming one of its uses.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass


class Fault(str, enum.Enum):
    """What an injected fault does to a matching request."""

    #: 429 ``RATE_LIMIT_REACHED`` (does not count against the rate limit).
    RATE_LIMIT = "429"
    #: 403 ``INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND``: what a token without the scope (or access) gets.
    FORBIDDEN = "403"
    #: 503 ``RETRIABLE_ERROR``: Airtable is briefly unavailable.
    UNAVAILABLE = "503"
    #: 502 with an HTML body, as a load balancer sends it.
    BAD_GATEWAY = "502"
    #: Sleep ``delay`` seconds, then handle the request normally.
    DELAY = "delay"
    #: Close the connection without any response; nothing is applied.
    DROP = "drop"
    #: Apply the request, then close the connection without the response.
    LOST_RESPONSE = "lost_response"


@dataclass
class FaultRule:
    """One injected fault; ``remaining=None`` means until cleared."""

    fault: Fault
    remaining: int | None
    method: str | None = None
    path_contains: str | None = None
    delay: float = 0.0

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains in target


class FaultPlan:
    """Thread-safe list of fault rules, consumed in the order they were added."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []

    def add(self, rule: FaultRule) -> None:
        if rule.remaining is not None and rule.remaining < 1:
            raise ValueError("count must be at least 1 (or None for until cleared)")
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self) -> list[FaultRule]:
        with self._lock:
            return [FaultRule(r.fault, r.remaining, r.method, r.path_contains, r.delay)
                    for r in self._rules]  # fmt: skip

    def take(self, method: str, target: str) -> FaultRule | None:
        """The first rule matching ``method`` and the request target, one use consumed."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, target):
                    if rule.remaining is not None:
                        rule.remaining -= 1
                        if rule.remaining == 0:
                            self._rules.remove(rule)
                    return rule
            return None

"""The optional Redis connection: lazy, bounded, never fatal.

``JOBTRACE_REDIS_URL`` (or ``AirtableSink(redis_url=...)``) lets jobtrace
processes on several hosts share one request budget per base and claim run IDs
across hosts. Needs the ``redis`` extra (``pip install 'jobtrace[redis]'``).

A Redis that cannot be reached (refused, timed out, gone mid-job) never stops
tracking: :meth:`RedisLink.call` raises :class:`RedisUnavailable`, the caller
goes on with its local fallback, the first failure is logged once as a
warning, Redis is tried again every :data:`RETRY_AFTER` seconds, and its
return is logged too. The URL's password is never logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ...errors import ConfigurationError
from ...redaction import register_secret

__all__ = ["RETRY_AFTER", "RedisLink", "RedisUnavailable", "redis_link"]

logger = logging.getLogger("jobtrace")

T = TypeVar("T")

#: Seconds between attempts to reach a Redis that failed.
RETRY_AFTER = 2.0
#: Connect and read timeout of every Redis command, in seconds.
SOCKET_TIMEOUT = 0.5


class RedisUnavailable(Exception):
    """Redis cannot be used right now; use the local fallback."""


class RedisLink:
    """One Redis server, as one process uses it. Thread-safe."""

    def __init__(self, url: str) -> None:
        try:
            import redis
            from redis.backoff import NoBackoff
            from redis.retry import Retry
        except ImportError:  # pragma: no cover - depends on the environment
            raise ConfigurationError(
                "a Redis URL is configured (JOBTRACE_REDIS_URL or redis_url=) but redis-py is not installed: "
                "pip install 'jobtrace[redis]'"
            ) from None
        self.where = describe_url(url)
        try:
            password = urlsplit(url).password
        except ValueError:
            password = None
        if password:
            register_secret(password)  # a Redis error message quoting the URL must not show it either
        try:
            self.client: Any = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), 0),
            )
        except ValueError as exc:
            raise ConfigurationError(
                f"not a Redis URL: {self.where} ({exc}); expected redis://host:6379/0 or rediss://..."
            ) from None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._lock = threading.Lock()
        self._down = False
        self._retry_at = 0.0
        self.failures = 0

    @property
    def up(self) -> bool:
        """False while Redis is considered unreachable (between retries)."""
        return not self._down

    def call(self, fn: Callable[[Any], T]) -> T:
        """``fn(client)``, or :class:`RedisUnavailable` when Redis is down or the call fails."""
        if self._down and time.monotonic() < self._retry_at:
            raise RedisUnavailable(self.where)
        try:
            result = fn(self.client)
        except self._errors as exc:
            self._failed(exc)
            raise RedisUnavailable(self.where) from exc
        if self._down:
            with self._lock:
                if self._down:
                    self._down = False
                    logger.warning(
                        "jobtrace: Redis at %s is reachable again; sharing the budget through it", self.where
                    )
        return result

    def _failed(self, exc: BaseException) -> None:
        with self._lock:
            self.failures += 1
            self._retry_at = time.monotonic() + RETRY_AFTER
            if self._down:
                return
            self._down = True
        logger.warning(
            "jobtrace: Redis at %s cannot be reached (%s: %s); going on with this host's local budget and "
            "run-ID claims until it is back (retrying every %.0f s)",
            self.where,
            type(exc).__name__,
            exc,
            RETRY_AFTER,
        )

    def __repr__(self) -> str:
        return f"<RedisLink {self.where} {'up' if self.up else 'down'}>"


def describe_url(url: str) -> str:
    """The URL without its user name and password (for logs and errors)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable Redis URL>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


_lock = threading.Lock()
_links: dict[str, RedisLink] = {}


def redis_link(url: str) -> RedisLink:
    """This process's link to the Redis at ``url`` (one per URL, so an outage is logged once)."""
    with _lock:
        link = _links.get(url)
        if link is None:
            link = _links[url] = RedisLink(url)
        return link

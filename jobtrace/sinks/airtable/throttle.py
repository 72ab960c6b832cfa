"""The Airtable sink's names for request pacing: :func:`throttle_for` (a base's shared budget).

The limiter interface and the in-process :class:`Throttle` live with the
delivery engine (:mod:`jobtrace.delivery.limiter`); the budget every process
of a host (or, with Redis, of every host) shares is :mod:`.budget`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...delivery.limiter import WINDOW_MARGIN, RequestLimiter, Slot, Throttle

if TYPE_CHECKING:
    from .budget import Budget

__all__ = ["WINDOW_MARGIN", "RequestLimiter", "Slot", "Throttle", "throttle_for"]


def throttle_for(endpoint_url: str, base_id: str, requests_per_second: float = 5.0) -> Budget:
    """The base's shared budget (:func:`.budget.budget_for`), jobtrace's share of it; kept for older callers."""
    from .budget import budget_for

    return budget_for(endpoint_url, base_id, requests_per_second=requests_per_second)

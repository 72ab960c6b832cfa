"""``argparse`` types for the number arguments of the ``jobtrace`` command and the emulator's.

Each parses one argument and refuses, with a one-line ``ArgumentTypeError``,
anything the command could not use: ``nan``, ``inf``, negative or zero where
it makes no sense, and values so large that ``thread.join`` or ``bind`` would
overflow on them.
"""

from __future__ import annotations

import argparse
import math
from typing import Final

__all__ = ["MAX_SECONDS", "non_negative_seconds", "port_number", "positive_count", "positive_seconds"]

#: The longest wait any command accepts: a week.
MAX_SECONDS: Final = 7 * 24 * 3600.0
#: The largest count (``--limit``) accepted.
MAX_COUNT: Final = 1_000_000


def _seconds(text: str, allow_zero: bool) -> float:
    low = "0" if allow_zero else "more than 0"
    expected = f"a number of seconds from {low} to {MAX_SECONDS:.0f} (7 days)"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero) or value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """A wait in seconds: finite, more than 0, at most a week (``--timeout``)."""
    return _seconds(text, allow_zero=False)


def non_negative_seconds(text: str) -> float:
    """A duration in seconds that may be 0: finite, at most a week (``--rate-limit-penalty``)."""
    return _seconds(text, allow_zero=True)


def positive_count(text: str) -> int:
    """A whole number from 1 to 1,000,000 (``--limit``)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"expected a positive whole number (at most {MAX_COUNT:,}), got {text!r}")
    return value


def port_number(text: str) -> int:
    """A TCP port, 0 to 65535 (0 picks a free one)."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535 (0 picks a free one), got {text!r}")
    return value

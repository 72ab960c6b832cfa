"""LogSink: one structlog event per record transition."""

from __future__ import annotations

from typing import Any

import structlog

from ..changes import Change
from .base import Sink

__all__ = ["LogSink"]


class LogSink(Sink):
    """Logs ``job.start``/``job.update``/``job.end`` (and ``client.*``) events through structlog.

    Each event carries ``run_id``, ``client_id`` (client records), the table and
    the changed fields by their Airtable names. Pass your own structlog logger
    (``structlog.get_logger("jobs")``) or let it use ``structlog.get_logger("jobtrace")``.
    Logging is synchronous, as structlog is; point it at a non-blocking handler
    if the log destination can be slow.
    """

    binds_structlog = True

    def __init__(self, logger: Any = None, level: str = "info") -> None:
        self._logger = logger if logger is not None else structlog.get_logger("jobtrace")
        self._level = level

    def write(self, change: Change) -> None:
        method = getattr(self._logger, self._level)
        extra = {"client_id": change.client_id} if change.client_id is not None else {}
        method(
            f"{change.kind}.{change.event}",
            run_id=change.run_id,
            table=change.table,
            fields=dict(change.fields),
            **extra,
        )

    def __repr__(self) -> str:
        return f"<LogSink level={self._level}>"

"""A sink that appends changes to a JSON-lines file and reads records back from it.

A real (if simple) sink two processes can share: what the child writes, the
parent reads back, as the Airtable sink allows in production. Appends of one
short line are atomic on POSIX, so parent and child may write at once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jobtrace.changes import Change
from jobtrace.sinks import Sink


class FileSink(Sink):
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()

    def write(self, change: Change) -> None:
        line = json.dumps([change.kind, change.event, change.run_id, change.client_id, dict(change.fields)])
        with self._lock, self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def changes(self) -> list[tuple[str, str, str, str | None, dict[str, Any]]]:
        if not self.path.exists():
            return []
        return [tuple(json.loads(line)) for line in self.path.read_text(encoding="utf-8").splitlines()]  # type: ignore[misc]

    def read(self, kind: str, run_id: str, client_id: str | None) -> Mapping[str, Any] | None:
        record: dict[str, Any] | None = None
        for k, _event, r, c, fields in self.changes():
            if (k, r, c) == (kind, run_id, client_id):
                record = {} if record is None else record
                record.update(fields)
        return None if record is None else {k: v for k, v in record.items() if v is not None}

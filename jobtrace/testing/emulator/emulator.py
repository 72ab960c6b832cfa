"""The public facade: :class:`AirtableEmulator`, a local Airtable over real HTTP."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import threading
from collections import deque
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from .faults import Fault, FaultPlan, FaultRule
from .ratelimit import RateLimiter
from .server import EmulatorHTTPServer, RequestLogEntry
from .store import Base

SchemaSource = Mapping[str, Any] | str | os.PathLike[str]

#: The request log keeps at most this many entries (the oldest are dropped).
MAX_LOG_ENTRIES = 100_000
#: A base ID as Airtable makes them: ``app`` and 14 letters and digits.
BASE_ID_PATTERN = re.compile(r"app[A-Za-z0-9]{14}")
#: With ``data=``, how often the bases are saved while the emulator runs (and always at stop).
SAVE_INTERVAL = 1.0


def check_base_id(base_id: str) -> str:
    """``base_id`` if it is shaped like Airtable's (``app`` + 14 letters and digits); else ``ValueError``."""
    if not isinstance(base_id, str) or not BASE_ID_PATTERN.fullmatch(base_id):
        raise ValueError(f"{base_id!r} is not an Airtable base ID: expected 'app' and 14 letters and digits")
    return base_id


class AirtableEmulator:
    """A local HTTP server that speaks Airtable's Web API v0 to an unmodified pyairtable.

    ::

        with AirtableEmulator(bases={"appXXXXXXXXXXXXXX": schema}) as emu:
            api = pyairtable.Api(emu.api_key, endpoint_url=emu.url)

    Args:
        bases: base ID -> schema (metadata-API dict, or a path to such a JSON file).
        api_key: the token clients must send as ``Authorization: Bearer``;
            a random one is generated when None.
        rate_limit: enforce Airtable's limit (5 requests/second/base, then 429s).
        rate_limit_penalty: seconds a base stays refused after exceeding it
            (Airtable: 30; use something short in tests).
        requests_per_second: the per-base limit.
        host, port: where to listen; port 0 picks a free port (kept across restarts).
        data: a JSON file that keeps the bases (schemas and records) across runs: loaded
            here if it exists (its bases first, then ``bases`` not already in it), saved
            every second while running and at :meth:`stop`. The API key is not saved.

    The server starts on :meth:`start` (or entering the ``with`` block) and
    serves each request on its own thread. Its state (records, request log,
    faults) survives :meth:`stop` / :meth:`start`.
    """

    def __init__(
        self,
        bases: Mapping[str, SchemaSource] | None = None,
        api_key: str | None = None,
        rate_limit: bool = True,
        rate_limit_penalty: float = 30.0,
        requests_per_second: float = 5.0,
        host: str = "127.0.0.1",
        port: int = 0,
        data: str | os.PathLike[str] | None = None,
    ) -> None:
        self._api_key = api_key if api_key is not None else "pat" + secrets.token_hex(24)
        if not self._api_key:
            raise ValueError("api_key must not be empty")
        self.host = host
        self._port = port
        self._rate_limit_penalty = rate_limit_penalty
        self._requests_per_second = requests_per_second
        self._limiter: RateLimiter | None = None
        self.rate_limit = rate_limit
        self._bases: dict[str, Base] = {}
        self._bases_lock = threading.Lock()
        self._faults = FaultPlan()
        self._log_lock = threading.Lock()
        # Bounded so a long-running CLI session cannot grow without limit.
        self._log_entries: deque[RequestLogEntry] = deque(maxlen=MAX_LOG_ENTRIES)
        self._down = False
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._data = os.fspath(data) if data is not None else None
        self._saver: threading.Thread | None = None
        self._saver_stop = threading.Event()
        self._saved: str | None = None
        if self._data is not None and os.path.exists(self._data):
            self.load(self._data)
        for base_id, schema in (bases or {}).items():
            if self._data is None or base_id not in self._bases:
                self.add_base(base_id, schema)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> AirtableEmulator:
        """Start serving (no-op if running). Returns self."""
        if self._server is not None:
            return self
        server = EmulatorHTTPServer((self.host, self._port), self)
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"airtable-emulator-{self._port}",
            daemon=True,
        )
        self._thread.start()
        if self._data is not None:
            self._saver_stop.clear()
            self._saver = threading.Thread(target=self._save_loop, name="airtable-emulator-saver", daemon=True)
            self._saver.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut open connections; clients then get connection errors.

        The same port is reused by a later :meth:`start`.
        """
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._saver is not None:
            self._saver_stop.set()
            self._saver.join(timeout=5)
            self._saver = None
        if self._data is not None:
            self.save(self._data)

    def __enter__(self) -> AirtableEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (0 until first started with ``port=0``)."""
        return self._port

    @property
    def url(self) -> str:
        """The ``endpoint_url`` for ``pyairtable.Api`` (no ``/v0``; pyairtable adds it)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._port}"

    @property
    def api_key(self) -> str:
        """The token clients must send. Never part of ``repr`` or any log."""
        return self._api_key

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<AirtableEmulator {self.url} bases={sorted(self._bases)} {state}>"

    # ------------------------------------------------------------------ data

    def add_base(self, base_id: str, schema: SchemaSource) -> None:
        """Add (or replace, emptied) a base from a metadata-shaped schema.

        Raises ``ValueError`` for a malformed base ID (Airtable's are ``app`` + 14 letters
        and digits) or a schema not in the metadata API's shape.
        """
        base = Base(check_base_id(base_id), schema)
        with self._bases_lock:
            self._bases[base_id] = base

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write every base (schema and records) to ``path`` as JSON, atomically."""
        text = json.dumps({"bases": [b.snapshot() for b in self._bases_snapshot().values()]})
        if text == self._saved:
            return
        tmp = f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
        self._saved = text

    def load(self, path: str | os.PathLike[str]) -> None:
        """Add the bases a :meth:`save` wrote (replacing bases of the same ID)."""
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        if not isinstance(data, dict) or not isinstance(data.get("bases"), list):
            raise ValueError(f"{os.fspath(path)} is not an emulator data file (no 'bases' list)")
        loaded = [Base.from_snapshot(b) for b in data["bases"]]
        for base in loaded:
            check_base_id(base.id)
        with self._bases_lock:
            self._bases.update({b.id: b for b in loaded})

    def _save_loop(self) -> None:
        assert self._data is not None
        while not self._saver_stop.wait(SAVE_INTERVAL):
            with contextlib.suppress(OSError):  # tried again in a second, and at stop
                self.save(self._data)

    @property
    def base_ids(self) -> list[str]:
        with self._bases_lock:
            return list(self._bases)

    def _bases_snapshot(self) -> dict[str, Base]:
        with self._bases_lock:
            return dict(self._bases)

    def _base(self, base_id: str) -> Base:
        with self._bases_lock:
            try:
                return self._bases[base_id]
            except KeyError:
                raise KeyError(f"no base {base_id!r} in this emulator") from None

    def records(self, base_id: str, table: str) -> list[dict[str, Any]]:
        """What the table holds now, as the API would return it (computed fields included).

        Each item is ``{"id", "createdTime", "fields"}`` keyed by field name, in
        creation order. Raises ``KeyError`` for an unknown base or table.
        """
        from .errors import ApiError

        try:
            return self._base(base_id).all_records(table)
        except ApiError:
            raise KeyError(f"no table {table!r} in base {base_id!r}") from None

    def schema(self, base_id: str) -> dict[str, Any]:
        """The base's current metadata (including select choices added by typecast)."""
        return self._base(base_id).metadata()

    # ------------------------------------------------------------------ request log

    def _log(self, entry: RequestLogEntry) -> None:
        with self._log_lock:
            self._log_entries.append(entry)

    @property
    def requests(self) -> list[RequestLogEntry]:
        """A snapshot of every request received so far, in the order they were answered."""
        with self._log_lock:
            return list(self._log_entries)

    def clear_requests(self) -> None:
        with self._log_lock:
            self._log_entries.clear()

    # ------------------------------------------------------------------ faults & limits

    def inject(
        self,
        fault: Fault | str,
        count: int | None = 1,
        method: str | None = None,
        path_contains: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Apply ``fault`` to the next ``count`` matching requests (None: until cleared).

        ``method`` filters on the HTTP method, ``path_contains`` on a substring
        of the raw request target (path and query, URL-encoded as sent).
        ``delay`` is the sleep for :attr:`Fault.DELAY`.
        """
        rule = FaultRule(Fault(fault), count, method, path_contains, delay)
        if rule.fault is Fault.DELAY and delay <= 0:
            raise ValueError("a delay fault needs delay > 0")
        self._faults.add(rule)

    def clear_faults(self) -> None:
        """Remove every pending injected fault."""
        self._faults.clear()

    def set_down(self, down: bool = True) -> None:
        """While down, every request's connection is closed without a response."""
        self._down = down

    @property
    def rate_limit(self) -> bool:
        return self._limiter is not None

    @rate_limit.setter
    def rate_limit(self, enabled: bool) -> None:
        self._limiter = RateLimiter(self._requests_per_second, self._rate_limit_penalty) if enabled else None

    def reset_rate_limit(self) -> None:
        """Forget request history and penalties (the limit stays on if it was)."""
        if self._limiter is not None:
            self._limiter.reset()

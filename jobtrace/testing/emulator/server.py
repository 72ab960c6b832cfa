"""The HTTP layer: a threading HTTP/1.1 server in front of :func:`.api.dispatch`.

Per request, in order: injected faults, URL length, ``Authorization: Bearer``,
the per-base rate limit, then the API route. Every request is logged (status
0 when the connection was dropped). Nothing is ever printed: the emulator
runs inside test suites, and the API key must not leak into their output.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .api import MAX_URL_LENGTH, base_id_of, dispatch
from .errors import ApiError
from .faults import Fault

if TYPE_CHECKING:
    from .emulator import AirtableEmulator

RATE_LIMIT_BODY = {
    "errors": [{"error": "RATE_LIMIT_REACHED", "message": "Rate limit exceeded. Please try again later"}]
}
_UNAVAILABLE_BODY = {
    "error": {
        "type": "RETRIABLE_ERROR",
        "message": "The server is temporarily unavailable. Please retry shortly.",
    }
}
_BAD_GATEWAY_HTML = b"<html><head><title>502 Bad Gateway</title></head><body>502 Bad Gateway</body></html>"


@dataclass(frozen=True)
class RequestLogEntry:
    """One request the emulator received.

    ``status`` is 0 when the connection was closed without a response (an
    injected ``drop`` or ``lost_response``, or the emulator set down).
    ``time`` is the wall-clock arrival time (``time.time()``).
    """

    method: str
    path: str
    query: str
    status: int
    time: float
    base_id: str | None
    fault: str | None = None
    duration: float = 0.0


class EmulatorHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer that knows its emulator and can cut open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], emulator: AirtableEmulator) -> None:
        self.emulator = emulator
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._conn_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut down every open keep-alive connection (so a stopped server is really gone)."""
        with self._conn_lock:
            conns = list(self._connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    server: EmulatorHTTPServer
    # Keep-alive: requests.Session reuses connections, as it does with Airtable.
    protocol_version = "HTTP/1.1"
    server_version = "AirtableEmulator"
    sys_version = ""
    timeout = 60  # idle keep-alive connections do not hold a thread forever
    # Headers and body go out in two writes; without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log."""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        emu = self.server.emulator
        started = time.time()
        target = self.path
        path, _, query = target.partition("?")
        base_id = base_id_of(path)
        fault_name: str | None = None
        # The response is decided first and logged before it is written, so a
        # client that has its answer always finds the request in emu.requests.
        response: tuple[int, bytes, str] | None = None
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length > 0 else b""
        except (ConnectionError, TimeoutError, ValueError):
            body = b""
            fault_name = "client_error"
        else:
            if emu._down:
                fault_name = "down"
            else:
                response, fault_name = self._respond(emu, path, query, base_id, target, body)
        status = response[0] if response is not None else 0
        emu._log(
            RequestLogEntry(
                method=self.command,
                path=unquote(path),
                query=query,
                status=status,
                time=started,
                base_id=base_id,
                fault=fault_name,
                duration=time.time() - started,
            )
        )
        if response is None:
            self.close_connection = True  # a dropped connection: no response at all
            return
        try:
            self._send(*response)
        except (ConnectionError, TimeoutError):
            self.close_connection = True

    def _respond(
        self,
        emu: AirtableEmulator,
        path: str,
        query: str,
        base_id: str | None,
        target: str,
        body: bytes,
    ) -> tuple[tuple[int, bytes, str] | None, str | None]:
        """``(response or None to drop the connection, fault name)`` for one request."""
        rule = emu._faults.take(self.command, target)
        fault = rule.fault if rule is not None else None
        if fault is Fault.DROP:
            return None, fault.value
        if fault is Fault.RATE_LIMIT:
            return _json(429, RATE_LIMIT_BODY), fault.value
        if fault is Fault.FORBIDDEN:
            error = ApiError.model_not_found()
            return _json(error.status, error.body), fault.value
        if fault is Fault.UNAVAILABLE:
            return _json(503, _UNAVAILABLE_BODY), fault.value
        if fault is Fault.BAD_GATEWAY:
            return (502, _BAD_GATEWAY_HTML, "text/html"), fault.value
        if fault is Fault.DELAY and rule is not None:
            time.sleep(rule.delay)
        code, payload = self._process(emu, path, query, base_id, target, body)
        if fault is Fault.LOST_RESPONSE:
            return None, fault.value  # applied above; the client never hears back
        return _json(code, payload), fault.value if fault is not None else None

    def _process(
        self,
        emu: AirtableEmulator,
        path: str,
        query: str,
        base_id: str | None,
        target: str,
        body: bytes,
    ) -> tuple[int, Any]:
        if len(target) > MAX_URL_LENGTH:
            return 414, {
                "error": {
                    "type": "INVALID_REQUEST_URI_TOO_LONG",
                    "message": f"URLs must be at most {MAX_URL_LENGTH} characters; "
                    "use POST .../listRecords for long formulas",
                }
            }
        auth = self.headers.get("Authorization", "")
        expected = f"Bearer {emu.api_key}"
        if not hmac.compare_digest(auth.encode(), expected.encode()):
            return 401, ApiError.authentication_required().body
        if emu._limiter is not None and base_id is not None and not emu._limiter.allow(base_id):
            return 429, RATE_LIMIT_BODY
        try:
            return dispatch(emu._bases_snapshot(), self.command, path, query, body)
        except ApiError as exc:
            return exc.status, exc.body
        except Exception as exc:  # a bug in the emulator: answer like Airtable's 500s
            return 500, {"error": {"type": "SERVER_ERROR", "message": f"Emulator error: {exc!r}"}}

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


def _json(status: int, body: Any) -> tuple[int, bytes, str]:
    return status, json.dumps(body).encode("utf-8"), "application/json; charset=utf-8"

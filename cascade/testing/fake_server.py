"""A local fake of the three vendor APIs, on 127.0.0.1 only, for tests, cassette synthesis and benchmarks.

It speaks just enough of each wire format for the native SDKs: `POST /v1/chat/completions` (OpenAI),
`POST /v1/messages` (Anthropic), `POST /v1beta/models/{m}:generateContent` and `/v1/models/{m}:generateContent`
(Gemini, new and legacy SDK; `:streamGenerateContent` too). Replies come from a script (a queue per vendor) or from
a responder function, and every request is recorded for assertions, as is the most it held at once
(`peak_in_flight`). Point an adapter at `server.url` through its base-URL setting.

    with FakeVendorServer() as server:
        server.script("openai", wire.openai_chat("4", prompt_tokens=12, completion_tokens=1))
        ...
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cascade.testing._inflight import InFlight
from cascade.testing.wire import FakeReply

Vendor = str  # "openai" | "anthropic" | "google"
Responder = Callable[["RecordedRequest"], FakeReply]

_GEMINI_PATH = re.compile(r"^/(v1|v1beta)/models/([^/:]+):(?:stream)?[gG]enerateContent$")


@dataclass(frozen=True)
class RecordedRequest:
    """What the fake server received."""

    vendor: Vendor
    path: str
    headers: dict[str, str]
    body: Any
    model: str | None


def vendor_for_path(path: str) -> tuple[Vendor, str | None] | None:
    """Which vendor a request path belongs to, and the model when the path names one."""
    path = path.split("?", 1)[0]
    if path.endswith("/chat/completions"):
        return "openai", None
    if path.endswith("/v1/messages"):
        return "anthropic", None
    if m := _GEMINI_PATH.match(path):
        return "google", m.group(2)
    return None


class FakeVendorServer:
    """A threaded HTTP server with scripted replies. Use as a context manager."""

    def __init__(self, responder: Responder | None = None) -> None:
        self._queues: dict[Vendor, deque[FakeReply]] = {}
        self._lock = threading.Lock()
        self.responder = responder
        self.requests: list[RecordedRequest] = []
        self._in_flight = InFlight()
        # Set by `stop`: a reply still trickling out ends there (its connection is closed).
        self.stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- scripting --------------------------------------------------------------------------------

    def script(self, vendor: Vendor, *replies: FakeReply) -> None:
        """Queue replies for a vendor, served in order; the responder answers once a queue is empty."""
        with self._lock:
            self._queues.setdefault(vendor, deque()).extend(replies)

    def pending(self, vendor: Vendor | None = None) -> int:
        """How many scripted replies have not been served yet."""
        with self._lock:
            if vendor is not None:
                return len(self._queues.get(vendor, ()))
            return sum(len(q) for q in self._queues.values())

    @property
    def in_flight(self) -> int:
        """Requests received and not yet answered (a reply's delay and the responder's time included)."""
        return self._in_flight.now

    @property
    def peak_in_flight(self) -> int:
        """The most requests there have been in flight at once: how many calls a client really had going."""
        return self._in_flight.peak

    def track(self) -> AbstractContextManager[None]:
        """Count the block as one request in flight (the request handler's)."""
        return self._in_flight.track()

    def next_reply(self, request: RecordedRequest) -> FakeReply:
        """Record a request and pick its reply: the vendor's queue first, then the responder."""
        with self._lock:
            self.requests.append(request)
            queue = self._queues.get(request.vendor)
            if queue:
                return queue.popleft()
        if self.responder is not None:
            return self.responder(request)
        return FakeReply(599, {"error": f"fake server: nothing scripted for {request.vendor} {request.path}"})

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeVendorServer:
        self.stopping.clear()
        handler = _make_handler(self)
        self._server = _Server(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-vendor", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeVendorServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def _make_handler(owner: FakeVendorServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
            return

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            raw = self.rfile.read(length) if length else b""
            found = vendor_for_path(self.path)
            if found is None:
                self._send(FakeReply(404, {"error": {"message": f"no route {self.path}"}}))
                return
            vendor, model = found
            try:
                body: Any = json.loads(raw) if raw else None
            except ValueError:
                body = raw.decode("utf-8", "replace")
            if vendor == "openai" and isinstance(body, dict):
                model = body.get("model")
            if vendor == "anthropic" and isinstance(body, dict):
                model = body.get("model")
            request = RecordedRequest(vendor, self.path, {k.lower(): v for k, v in self.headers.items()}, body, model)
            with owner.track():
                self._send(owner.next_reply(request))

        def _send(self, reply: FakeReply) -> None:
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.drop:
                self._hang_up()
                return
            if isinstance(reply.body, bytes):
                payload = reply.body
            elif isinstance(reply.body, str):
                payload = reply.body.encode()
            else:
                payload = json.dumps(reply.body).encode()
            headers = {
                "server": self.version_string(),
                "date": self.date_time_string(),
                "content-type": "application/json",
                **reply.headers,
                "content-length": str(len(payload)),
            }
            reason = self.responses.get(reply.status, ("",))[0]
            head = f"HTTP/1.1 {reply.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            raw = head.encode("latin-1") + b"\r\n"
            try:
                if reply.cut_after is not None:
                    # The content-length above promises the whole payload: the client reads a body cut short.
                    self.wfile.write(raw + payload[: reply.cut_after])
                    self.wfile.flush()
                    self._hang_up()
                elif not reply.trickle_s:
                    self.wfile.write(raw + payload)
                elif reply.trickle_headers:
                    self._trickle(raw + payload, reply.trickle_s)
                else:
                    self.wfile.write(raw)
                    self._trickle(payload, reply.trickle_s)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (its timeout fired): nothing left to tell it.
                pass

        def _trickle(self, data: bytes, every_s: float) -> None:
            for i in range(len(data)):
                self.wfile.write(data[i : i + 1])
                if owner.stopping.wait(every_s):  # the server is stopping: end the reply unfinished
                    self._hang_up()
                    return

        def _hang_up(self) -> None:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    return Handler

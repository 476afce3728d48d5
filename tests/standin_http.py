"""What every vendor stand-in served over real HTTP shares: a threaded server on
127.0.0.1 (TLS when given a context), every request recorded as it arrived, canned
answers, and the trouble an outage test needs. A vendor's stand-in subclasses
`HttpStandin` and supplies its model: `route()` (answer a request, or None for no route),
`authorized()` (a refusal for bad credentials, or None) and `is_write()`.

Answers come from these places, checked in this order:

1. `trouble`, when set, sees each request first and may answer it instead of the vendor
   (a Reply: 429, 5xx...) or have the model apply it and hold the answer back (a number
   of seconds: a hang past the client's timeout);
2. `deny(token, reply)`: every request that mentions `token` (in its path or body) gets
   `reply`, as a vendor refuses an item the credentials may not touch;
3. canned replies per (method, path): `fail_once()` then `reply()` (consumed in order,
   the last one repeating); a `delay` holds the answer back;
4. the model (`route()`); writes it carried out (`took_effect()`) are listed in `applied`.

`refuse()` closes the listening socket, so connections are refused until `accept()`.
Each request is stamped with `clock()` as it arrives. `latency` holds every answer back
that many seconds, and `max_in_flight` tells how many requests were ever served at once.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import orjson


@dataclass(frozen=True)
class Reply:
    """One canned answer: status, JSON body (None for none), headers, delay in seconds,
    and an event to wait for (at most 30 s) before answering."""

    status: int = 200
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hold: threading.Event | None = None


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived: header names lower-cased, body raw and decoded."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float = 0.0  # the stand-in's clock() on arrival

    @property
    def json(self) -> Any:
        """Decode the body, or None when there was none."""
        return orjson.loads(self.body) if self.body else None

    def mentions(self, token: str) -> bool:
        """Tell whether the path or the body names `token` (an item's id or number)."""
        return token in self.path or token.encode() in self.body


Trouble = Callable[[Recorded], "Reply | float | None"]


class HttpStandin:
    """Serve a recording vendor on 127.0.0.1 on a free port, in a background thread."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.requests: list[Recorded] = []
        self.applied: list[Recorded] = []  # writes the model carried out
        self.trouble: Trouble | None = None  # see the module's docstring
        self.clock: Callable[[], float] = time.monotonic
        self.slow: dict[tuple[str, str], float] = {}  # apply, then answer after N seconds
        self.latency = 0.0  # seconds every answer is held back (after applying it)
        self.in_flight = 0  # requests received and not yet answered
        self.max_in_flight = 0
        self._canned: dict[tuple[str, str], list[Reply]] = {}
        self._once: dict[tuple[str, str], list[Reply]] = {}
        self._denied: list[tuple[str, Reply]] = []
        self._tls = tls
        self._lock = threading.Lock()
        self._server = self._listen(("127.0.0.1", 0))
        self._thread = self._serving()

    # -- what a vendor's stand-in supplies -------------------------------------------

    def route(self, request: Recorded) -> Reply | None:
        """Answer a request from the model (under the stand-in's lock); None: no route."""
        return None

    def authorized(self, request: Recorded) -> Reply | None:
        """Return the vendor's refusal of the request's credentials, or None."""
        return None

    def is_write(self, request: Recorded) -> bool:
        """Tell whether a request changes something."""
        return request.method != "GET"

    def took_effect(self, request: Recorded, reply: Reply) -> bool:
        """Tell whether the model carried a request out (it goes in `applied`)."""
        return reply.status < 300 and self.is_write(request)

    def no_route(self, request: Recorded) -> Reply:
        return Reply(404, {"message": f"No route for {request.method} {request.path}"})

    # -- running ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Return the base URL the client is pointed at."""
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def refuse(self) -> None:
        """Stop listening: connections are refused, as from a host that is down."""
        self.stop()

    def accept(self) -> None:
        """Listen again, on the same port, after `refuse()`."""
        self._server = self._listen(self._server.server_address[:2])
        self._thread = self._serving()
        self._thread.start()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _listen(self, address: tuple[Any, ...]) -> _Server:
        server = _Server((str(address[0]), int(address[1])), _Handler)
        server.standin = self
        if self._tls is not None:
            server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        return server

    def _serving(self) -> threading.Thread:
        return threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    # -- answers ---------------------------------------------------------------------

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        """Answer (method, path) with these replies in turn, the last one repeating."""
        self._canned[(method.upper(), path)] = list(replies)

    def fail_once(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests to (method, path) with these, then as the model would."""
        self._once.setdefault((method.upper(), path), []).extend(replies)

    def deny(self, token: str, reply: Reply) -> None:
        """Answer every request that mentions `token` with `reply`, from now on."""
        self._denied.append((token, reply))

    def writes(self) -> list[Recorded]:
        """Return the requests that change something, carried out or not."""
        return [r for r in self.requests if self.is_write(r)]

    def answer(self, request: Recorded) -> Reply:
        """Record a request and choose its answer (see the module's docstring)."""
        with self._lock:
            self.requests.append(request)
            refusal = self.authorized(request)
            if refusal is not None:
                return refusal
            trouble = self.trouble(request) if self.trouble is not None else None
            if isinstance(trouble, Reply):
                return trouble
            denied = next((r for token, r in self._denied if request.mentions(token)), None)
            if denied is not None:
                return denied
            once = self._once.get((request.method, request.path))
            if once:
                return once.pop(0)
            canned = self._canned.get((request.method, request.path))
            if canned:
                return canned.pop(0) if len(canned) > 1 else canned[0]
            reply = self.route(request)
            if reply is None:
                return self.no_route(request)
            if self.took_effect(request, reply):
                self.applied.append(request)
            slow = trouble or self.slow.get((request.method, request.path), 0.0)
            return replace(reply, delay=slow) if slow else reply

    def serving(self, change: int) -> None:
        """Count a request in (+1) or out (-1) of those being served right now."""
        with self._lock:
            self.in_flight += change
            self.max_in_flight = max(self.max_in_flight, self.in_flight)


# -- HTTP plumbing -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Threaded server that does not wait for slow (delayed) handlers when closing."""

    block_on_close = False
    daemon_threads = True
    request_queue_size = 64  # many clients connecting at once (a concurrent performer)
    standin: HttpStandin


class _Handler(BaseHTTPRequestHandler):
    """Hand every request to the stand-in and write its Reply back."""

    server: _Server

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            # The client went away between its headers and its body (urllib3 sends them
            # apart; a `kill -9` can fall between): no request arrived, as for a vendor.
            self.close_connection = True
            return
        request = Recorded(
            method=self.command,
            path=parts.path,
            query=parse_qs(parts.query),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            at=self.server.standin.clock(),
        )
        standin = self.server.standin
        standin.serving(+1)
        try:
            reply = standin.answer(request)
            if reply.delay or standin.latency:
                time.sleep(reply.delay + standin.latency)
            if reply.hold is not None:
                reply.hold.wait(30)
        finally:
            standin.serving(-1)  # before answering: the client cannot be ahead of the count
        self._reply(reply)

    def _reply(self, reply: Reply) -> None:
        body = orjson.dumps(reply.json) if reply.json is not None else b""
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            if body:
                self.send_header("Content-Type", "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first (a timeout test)

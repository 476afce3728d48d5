"""HTTP/1.1 connections for httpx's transport, on the standard library's http.client.

Kept: it pays. bench/fastpaths.py (A/B interleaved): a GitHub call cost 294 us of CPU
here, 463 us through httpx's own transport and 644 us through `httpx.Client` (2.19x).
It plugs into `HTTPTransport._pool`, a private attribute, so pyproject.toml pins httpx
to the releases known to have it (0.27, 0.28), and tests/test_stdlib_http.py checks
that requests really go through this pool.

`httpx.HTTPTransport` hands each request to a connection pool (httpcore's by default)
and wraps what comes back. The pool here does that work with `http.client`, which sends
and parses in a fraction of httpcore's CPU: a GitHub call cost 0.43 ms of CPU through
httpcore and 0.32 ms through this pool (the rest is httpx building the request and the
response), and a reassignment makes four. At a steady 200 deliveries/s on a 2-core box
that took the webhook-to-comment p95 from 0.2-0.4 s to under 0.1 s (bench/e2e.py).

Requests are still built and answered by httpx: the adapters' code, timeouts, error
classes and pytest-httpx's interception (which replaces `HTTPTransport.handle_request`)
are unchanged. Proxies stay with httpx's own pool (`transport` is only for direct
connections). Failures raise httpcore's exception for them, which httpx maps as it maps
its own pool's.

Connections are kept alive per origin while the server keeps them open: an idle one the
server has closed (readable while idle) or idle for longer than `KEEPALIVE_EXPIRY` is
dropped before reuse, as httpcore does.
"""

from __future__ import annotations

import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpcore
import httpx

KEEPALIVE_EXPIRY = 5.0  # seconds idle before a connection is not reused (httpx's default)
MAX_IDLE = 20  # kept-alive connections per origin, more than a performer's lanes
Origin = tuple[bytes, bytes, int]


class StdlibPool:
    """What `httpx.HTTPTransport` asks of its pool: `handle_request` and `close`."""

    def __init__(self, ssl_context: ssl.SSLContext) -> None:
        self._ssl = ssl_context
        self._idle: dict[Origin, list[tuple[http.client.HTTPConnection, float]]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpcore.Request) -> httpcore.Response:
        """Send one request and read the whole answer (a REST answer, not a download)."""
        url = request.url
        default_port = 443 if url.scheme == b"https" else 80
        origin: Origin = (url.scheme, url.host, url.port or default_port)
        timeouts = request.extensions.get("timeout", {})
        body = b"".join(request.stream)  # type: ignore[arg-type]  # a sync stream
        conn = self._connection(origin, timeouts.get("connect"))
        sock = conn.sock
        assert sock is not None
        try:
            with _mapped(httpcore.WriteTimeout, httpcore.WriteError):
                sock.settimeout(timeouts.get("write"))
                conn.putrequest(request.method.decode("ascii"), url.target.decode("ascii"),
                                skip_host=True, skip_accept_encoding=True)  # httpx's own
                for name, value in request.headers:
                    _put_header(conn, name.decode("latin-1"), value.decode("latin-1"))
                conn.endheaders(body or None)  # one send for headers and a small body
            with _mapped(httpcore.ReadTimeout, httpcore.ReadError):
                sock.settimeout(timeouts.get("read"))
                answer = conn.getresponse()
                content = answer.read()
        except BaseException:
            conn.close()
            raise
        if answer.will_close:
            conn.close()
        else:
            self._keep(origin, conn)
        return httpcore.Response(
            answer.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1"))
                     for k, v in answer.getheaders()],
            content=content,
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": answer.reason.encode("latin-1")})

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn, _ in conns:
                conn.close()

    def __enter__(self) -> StdlibPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _connection(self, origin: Origin, timeout: float | None) -> http.client.HTTPConnection:
        """An idle connection still good to use, or a new one."""
        while True:
            with self._lock:
                conns = self._idle.get(origin)
                conn, since = conns.pop() if conns else (None, 0.0)
            if conn is None:
                break
            fresh = time.monotonic() - since < KEEPALIVE_EXPIRY
            if fresh and conn.sock is not None and not _readable(conn.sock):
                return conn
            conn.close()  # expired, or closed by the server while idle
        scheme, host, port = origin
        name = host.decode("ascii")
        if scheme == b"https":
            conn = http.client.HTTPSConnection(name, port, timeout=timeout, context=self._ssl)
        elif scheme == b"http":
            conn = http.client.HTTPConnection(name, port, timeout=timeout)
        else:
            raise httpcore.UnsupportedProtocol(f"Request URL has an unsupported protocol "
                                               f"'{scheme.decode('ascii')}://'.")
        with _mapped(httpcore.ConnectTimeout, httpcore.ConnectError):
            conn.connect()  # TLS handshake and certificate check included
        assert conn.sock is not None
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _keep(self, origin: Origin, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            conns = self._idle.setdefault(origin, [])
            if len(conns) < MAX_IDLE:
                conns.append((conn, time.monotonic()))
                return
        conn.close()


def transport() -> httpx.HTTPTransport:
    """An httpx transport whose pool is `StdlibPool`, trusting what httpx would trust
    (certifi, or SSL_CERT_FILE / SSL_CERT_DIR)."""
    context = httpx.create_ssl_context(trust_env=True)
    made = httpx.HTTPTransport(verify=context)
    made._pool.close()  # httpcore's, unused: it has opened nothing yet
    made._pool = StdlibPool(context)  # type: ignore[assignment]
    return made


def _readable(sock: socket.socket) -> bool:
    """Whether an idle connection has something to read: the server closed it (EOF) or
    broke the protocol; either way it cannot carry a request."""
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _put_header(conn: http.client.HTTPConnection, name: str, value: str) -> None:
    """Add a header; one HTTP forbids raises httpcore's error, naming the header only
    (http.client's ValueError quotes the value: a token, say)."""
    try:
        conn.putheader(name, value)
    except ValueError:
        raise httpcore.LocalProtocolError(
            f"header {name} has a name or value HTTP forbids (a line break?)") from None


@contextmanager
def _mapped(timed_out: type[Exception], failed: type[Exception]) -> Iterator[None]:
    """Raise httpcore's exception for a failure in this phase (connect, write or read),
    which httpx turns into its own, as it does for httpcore's pool."""
    try:
        yield
    except TimeoutError as exc:
        raise timed_out(str(exc) or "timed out") from exc
    except http.client.HTTPException as exc:  # RemoteDisconnected, a bad status line...
        raise httpcore.RemoteProtocolError(str(exc) or type(exc).__name__) from exc
    except OSError as exc:  # refused, reset, unreachable, a certificate not trusted
        raise failed(str(exc) or type(exc).__name__) from exc

"""adapters.stdlib_http against real servers on loopback, over HTTP and HTTPS: what httpx
users expect of a transport (keep-alive, bodies, errors as httpx's exceptions)."""

from __future__ import annotations

import gzip
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trustme

from adapters import stdlib_http


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a response says otherwise
    server: Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:  # http.server's naming
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def _answer(self) -> None:
        self.server.peers.append(self.client_address[1])  # one port per connection
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        if path == "/hangup":
            self.close_connection = True
            return
        if path == "/slow":
            time.sleep(1.0)
        if path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b'{"parts": ', b'"two"}'):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        data = json.dumps({"method": self.command, "path": self.path,
                           "body": body.decode(), "host": self.headers.get("Host"),
                           "auth": self.headers.get("Authorization")}).encode()
        encoding = None
        if path == "/gzip":
            data, encoding = gzip.compress(data), "gzip"
        self.send_response(404 if path == "/missing" else 200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if encoding:
            self.send_header("Content-Encoding", encoding)
        if path == "/pages":  # GitHub pages with Link; a header may come more than once
            self.send_header("Link", '<https://api.github.com/x?page=2>; rel="next"')
            self.send_header("X-Many", "a")
            self.send_header("X-Many", "b")
        if path in ("/close", "/then-close"):
            # /close says so; /then-close closes without saying (as servers do when a
            # keep-alive connection has been idle too long)
            if path == "/close":
                self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.peers: list[int] = []

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a handshake the client refused, a connection it dropped: expected here


@pytest.fixture(params=["http", "https"])
def base(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Server]]:
    server = Server()
    if request.param == "https":  # a throwaway CA, trusted as users do: SSL_CERT_FILE
        ca = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("localhost").configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host = "localhost" if request.param == "https" else "127.0.0.1"
    try:
        yield f"{request.param}://{host}:{server.server_address[1]}", server
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(transport=stdlib_http.transport(), timeout=5.0) as made:
        yield made


def test_requests_and_answers_pass_through_unchanged(base: tuple[str, Server],
                                                     client: httpx.Client) -> None:
    url, _ = base
    answer = client.post(f"{url}/echo?x=1", json={"a": 1},
                         headers={"Authorization": "Bearer t"})
    assert answer.status_code == 200 and answer.reason_phrase == "OK"
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == {"method": "POST", "path": "/echo?x=1", "body": '{"a":1}',
                             "host": url.split("://")[1], "auth": "Bearer t"}
    assert client.get(f"{url}/missing").status_code == 404
    assert client.get(f"{url}/chunked").json() == {"parts": "two"}
    assert client.get(f"{url}/gzip").json()["path"] == "/gzip"  # httpx decodes it
    pages = client.get(f"{url}/pages")
    assert pages.links["next"]["url"] == "https://api.github.com/x?page=2"
    assert pages.headers.get_list("x-many") == ["a", "b"]


def test_httpx_sends_through_the_pool(base: tuple[str, Server]) -> None:
    """The speed-up is only there while httpx's transport calls the pool it was given
    (an httpx release that stopped would pass every other test here, slowly)."""
    url, _ = base
    transport = stdlib_http.transport()
    pool = transport._pool
    assert isinstance(pool, stdlib_http.StdlibPool)
    transport.handle_request(httpx.Request("GET", f"{url}/json")).read()
    assert sum(len(idle) for idle in pool._idle.values()) == 1


def test_a_connection_is_kept_alive_and_reused(base: tuple[str, Server],
                                               client: httpx.Client) -> None:
    url, server = base
    for _ in range(3):
        client.get(f"{url}/json")
    assert len(server.peers) == 3 and len(set(server.peers)) == 1


def test_a_connection_the_server_closed_is_not_reused(base: tuple[str, Server],
                                                      client: httpx.Client) -> None:
    url, server = base
    client.get(f"{url}/close")  # says Connection: close
    client.get(f"{url}/then-close")  # closes without saying
    time.sleep(0.1)  # the FIN arrives while the connection is idle
    assert client.get(f"{url}/json").status_code == 200
    assert len(set(server.peers)) == 3


def test_an_idle_connection_expires(base: tuple[str, Server], client: httpx.Client,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url, server = base
    monkeypatch.setattr(stdlib_http, "KEEPALIVE_EXPIRY", 0.05)
    client.get(f"{url}/json")
    time.sleep(0.1)
    client.get(f"{url}/json")
    assert len(set(server.peers)) == 2


def test_failures_raise_httpx_exceptions(base: tuple[str, Server]) -> None:
    url, _ = base
    with httpx.Client(transport=stdlib_http.transport(), timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.get(f"{url}/slow")
        with pytest.raises(httpx.RemoteProtocolError):
            client.get(f"{url}/hangup")
        assert client.get(f"{url}/json").status_code == 200  # and it carries on


def test_a_refused_connection_is_a_connect_error(client: httpx.Client) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nobody listens
    with pytest.raises(httpx.ConnectError):
        client.get(f"http://127.0.0.1:{port}/")


def test_a_certificate_nobody_trusts_is_refused(tmp_path: Path) -> None:
    server = Server()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    trustme.CA().issue_cert("localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with (httpx.Client(transport=stdlib_http.transport(), timeout=5.0) as client,
              pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED")):
            client.get(f"https://localhost:{server.server_address[1]}/json")
    finally:
        server.shutdown()
        server.server_close()


def test_an_unsupported_scheme_is_refused(client: httpx.Client) -> None:
    transport = stdlib_http.transport()
    with pytest.raises(httpx.UnsupportedProtocol):
        transport.handle_request(httpx.Request("GET", "ftp://example.com/x"))


def test_a_header_http_forbids_is_refused_without_quoting_it(
        base: tuple[str, Server], client: httpx.Client) -> None:
    url, server = base
    with pytest.raises(httpx.LocalProtocolError) as refused:
        client.get(f"{url}/json", headers={"Authorization": "Bearer ghp_secret\r\nX-Evil: 1"})
    assert "Authorization" in str(refused.value) and "ghp_secret" not in str(refused.value)
    assert server.peers == []  # nothing was sent
    assert client.get(f"{url}/json").status_code == 200

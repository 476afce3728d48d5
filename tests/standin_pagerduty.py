"""A PagerDuty stand-in at the transport: the `pagerduty` clients run on httpx2, which
pytest-httpx does not intercept, so tests hand this one's `transport` to the clients.

Answers are queued per (method, path) and used in order; every request is recorded. A
request with no answer queued fails the test instead of being answered at random.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson


@dataclass(frozen=True)
class Seen:
    """One request as the stand-in received it."""

    method: str
    path: str
    headers: httpx2.Headers
    body: Any
    timeout: Any


@dataclass
class PagerDutyStandIn:
    """Record requests and answer them from queues, like bedevere's FakeGH."""

    requests: list[Seen] = field(default_factory=list)
    _answers: dict[tuple[str, str], list[httpx2.Response | type[Exception]]] = field(
        default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)  # performer threads call in

    def answer(self, method: str, path: str, status: int = 200, body: Any = None,
               headers: dict[str, str] | None = None) -> None:
        """Queue a JSON answer for the next request to this method and path."""
        self._answers.setdefault((method, path), []).append(json_response(status, body, headers))

    def fail(self, method: str, path: str, error: type[Exception]) -> None:
        """Queue a transport error (httpx2.ReadTimeout, httpx2.ConnectError...)."""
        self._answers.setdefault((method, path), []).append(error)

    @property
    def transport(self) -> httpx2.MockTransport:
        return httpx2.MockTransport(self._handle)

    def _handle(self, request: httpx2.Request) -> httpx2.Response:
        body = orjson.loads(request.content) if request.content else None
        with self._lock:
            self.requests.append(Seen(request.method, request.url.path, request.headers, body,
                                      request.extensions.get("timeout")))
            queue = self._answers.get((request.method, request.url.path))
            if not queue:
                raise AssertionError(f"unexpected {request.method} {request.url.path}")
            answer = queue.pop(0)
        if isinstance(answer, httpx2.Response):
            return answer
        raise answer(f"stand-in: {answer.__name__}", request=request)  # type: ignore[call-arg]


def json_response(status: int, body: Any = None,
                  headers: dict[str, str] | None = None) -> httpx2.Response:
    """Build a streamed JSON response, as a real transport returns one.

    Streamed, not `json=`: the REST client reads `response.elapsed`, which httpx2 sets
    only once a stream has been read and closed.
    """
    content = b"" if body is None else orjson.dumps(body)
    all_headers = {"content-type": "application/json", **(headers or {})}
    return httpx2.Response(status, headers=all_headers, stream=httpx2.ByteStream(content))

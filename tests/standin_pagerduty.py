"""A PagerDuty stand-in at the transport: the `pagerduty` clients run on httpx2, which
pytest-httpx does not intercept, so tests hand this one's `transport` to the clients.

Answers are queued per (method, path) and used in order; every request is recorded. A
request with no answer queued fails the test instead of being answered at random.

`PagerDutyServer` is a stateful REST API v2 over real HTTPS (tests/standin_http.py; the
clients accept only https:// base URLs): incidents whose assignments are read and set
(`PUT` needs the `From` header) and whose notes are listed and added. Unknown incidents
get PagerDuty's 404 body.
"""

from __future__ import annotations

import itertools
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

import httpx2
import orjson

from tests.standin_http import HttpStandin, Recorded, Reply


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


NOT_FOUND = {"error": {"message": "Not Found", "code": 2100}}
_INCIDENT = re.compile(r"/incidents/(?P<id>[^/]+)(?P<notes>/notes)?")


@dataclass
class Incident:
    """The parts of a PagerDuty incident firstline reads and writes."""

    id: str
    assignees: list[str] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)

    def shown(self) -> dict[str, Any]:
        return {"id": self.id, "type": "incident", "assignments": [
            {"assignee": {"id": user, "type": "user_reference"}} for user in self.assignees]}


class PagerDutyServer(HttpStandin):
    """Serve PagerDuty's REST API v2 incidents over HTTPS on 127.0.0.1 (`tls` holds a
    certificate for that address), asking for the API token as PagerDuty does."""

    def __init__(self, token: str, tls: ssl.SSLContext) -> None:
        super().__init__(tls)
        self.incidents: dict[str, Incident] = {}
        self._token = token
        self._note_ids = itertools.count(1)

    def add_incident(self, id: str, assignees: list[str]) -> Incident:
        self.incidents[id] = Incident(id, list(assignees))
        return self.incidents[id]

    def authorized(self, request: Recorded) -> Reply | None:
        if request.headers.get("authorization") != f"Token token={self._token}":
            return Reply(401, {"error": {"message": "Unauthorized", "code": 2006}})
        return None

    def route(self, request: Recorded) -> Reply | None:
        match = _INCIDENT.fullmatch(request.path)
        if match is None:
            return None
        incident = self.incidents.get(match["id"])
        if incident is None:
            return Reply(404, NOT_FOUND)
        if request.method != "GET" and "@" not in request.headers.get("from", ""):
            return Reply(400, {"error": {"message": "Invalid Input Provided", "code": 2001,
                                         "errors": ["The From header is required"]}})
        if match["notes"]:
            return self._notes(incident, request)
        if request.method == "GET":
            return Reply(200, {"incident": incident.shown()})
        if request.method == "PUT":
            body = (request.json or {}).get("incident", {})
            incident.assignees = [a["assignee"]["id"] for a in body.get("assignments", [])]
            return Reply(200, {"incident": incident.shown()})
        return None

    def _notes(self, incident: Incident, request: Recorded) -> Reply | None:
        if request.method == "GET":
            return Reply(200, {"notes": incident.notes})
        if request.method == "POST":
            note = {"id": f"PN{next(self._note_ids)}",
                    "content": (request.json or {}).get("note", {}).get("content", ""),
                    "created_at": "2026-11-21T10:00:00Z"}
            incident.notes.append(note)
            return Reply(201, {"note": note})
        return None

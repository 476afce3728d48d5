"""A GitHub REST stand-in for bench/e2e.py: the issue endpoints firstline's adapter calls.

    .venv/bin/python bench/e2e_standin.py --token TOKEN   # prints its port, then serves

Runs in its own process (so it never shares a GIL with the load generator or firstline),
on 127.0.0.1 only: one thread, an asyncio server parsing HTTP/1.1 with httptools, with
keep-alive; each request is answered as soon as it is complete, so in order on its
connection. It shares a small machine with what is measured, so it spends as little CPU
per request as it can. State is in memory, per issue, as GitHub keeps it:

    GET    /repos/{owner}/{repo}/issues/{n}             the issue (assignees, labels)
    POST   /repos/{owner}/{repo}/issues/{n}/assignees   add assignees    (201, the issue)
    DELETE /repos/{owner}/{repo}/issues/{n}/assignees   remove assignees (200, the issue)
    GET    /repos/{owner}/{repo}/issues/{n}/comments    the comments (one page, no Link)
    POST   /repos/{owner}/{repo}/issues/{n}/comments    add a comment    (201)

Requests without `Authorization: Bearer TOKEN` get 401, as GitHub answers. For each
issue it records the monotonic and wall-clock time of the first request about it and of
each comment POST as it arrives (before its body is read), so bench/e2e.py can measure
webhook in -> comment out. Bench-only control routes:

    POST /_bench/issues   {"repo": "o/r", "first": 1, "count": N, "assignees": ["dreyes"]}
    GET  /_bench/progress how many issues have a comment, requests handled, writes made
                          (cheap, for polling)
    GET  /_bench/results  per issue: times, comments, assignees, assignments made (POST
                          .../assignees); plus request counts and
                          the time spent handling requests (to show the stand-in is not
                          the bottleneck)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import sys
import time
import traceback
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, cast

import httptools

_ISSUE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)(?P<rest>/[a-z]+)?")
_METHODS = frozenset({b"GET", b"POST", b"DELETE"})


@dataclass
class Issue:
    assignees: list[str]
    labels: list[str] = field(default_factory=lambda: ["bug"])
    comments: list[str] = field(default_factory=list)
    first_mono: float | None = None  # first request about this issue (the assign's GET)
    first_wall: float | None = None
    comment_mono: list[float] = field(default_factory=list)  # each POST .../comments
    comment_wall: list[float] = field(default_factory=list)
    requests: int = 0
    assigns: int = 0  # POST .../assignees that arrived: an assignment made again shows


class State:
    """Everything the stand-in knows. Only the event loop's thread touches it: no lock."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.issues: dict[tuple[str, int], Issue] = {}
        self.counts: dict[str, int] = {}
        self.handling_s = 0.0  # time from request arrival to answer written, summed
        self.handled = 0
        self.unauthorized = 0
        self.writes = 0  # requests that change an issue (bench/soak.py waits for the next)

    def answer(self, method: str, path: str, authorization: str | None, raw: bytes,
               mono: float, wall: float) -> tuple[int, Any]:
        if path.startswith("/_bench/"):
            return self._control(method, path, raw)
        if authorization != f"Bearer {self.token}":
            self.unauthorized += 1
            return 401, {"message": "Bad credentials"}
        return self._github(method, path, raw, mono, wall)

    def _github(self, method: str, path: str, raw: bytes, mono: float,
                wall: float) -> tuple[int, Any]:
        match = _ISSUE.fullmatch(path)
        rest = (match["rest"] or "") if match else "?"
        route = f"{method} issue{rest}"
        self.counts[route] = self.counts.get(route, 0) + 1
        issue = self.issues.get((match["repo"], int(match["n"]))) if match else None
        if issue is None:
            return 404, {"message": "Not Found"}
        issue.requests += 1
        if issue.first_mono is None:
            issue.first_mono, issue.first_wall = mono, wall
        body = json.loads(raw) if raw else {}
        self.writes += method != "GET"
        if (method, rest) == ("GET", ""):
            return 200, _issue_json(issue)
        if (method, rest) == ("POST", "/assignees"):
            issue.assigns += 1
            issue.assignees += [a for a in body["assignees"] if a not in issue.assignees]
            return 201, _issue_json(issue)
        if (method, rest) == ("DELETE", "/assignees"):
            issue.assignees = [a for a in issue.assignees if a not in body["assignees"]]
            return 200, _issue_json(issue)
        if (method, rest) == ("GET", "/comments"):
            return 200, [{"id": i + 1, "body": b} for i, b in enumerate(issue.comments)]
        if (method, rest) == ("POST", "/comments"):
            issue.comment_mono.append(mono)
            issue.comment_wall.append(wall)
            issue.comments.append(body["body"])
            return 201, {"id": len(issue.comments), "body": body["body"]}
        return 404, {"message": f"no route {method} {rest}"}

    def _control(self, method: str, path: str, raw: bytes) -> tuple[int, Any]:
        if (method, path) == ("POST", "/_bench/issues"):
            spec = json.loads(raw)
            for n in range(spec["first"], spec["first"] + spec["count"]):
                self.issues[(spec["repo"], n)] = Issue(list(spec["assignees"]))
            return 201, {"created": spec["count"]}
        if (method, path) == ("GET", "/_bench/results"):
            issues = {str(n): {"first_mono": i.first_mono, "first_wall": i.first_wall,
                               "comment_mono": i.comment_mono,
                               "comment_wall": i.comment_wall,
                               "comments": i.comments, "assignees": i.assignees,
                               "requests": i.requests, "assigns": i.assigns}
                      for (_, n), i in self.issues.items()}
            return 200, {"issues": issues, "counts": self.counts,
                         "handling_s": self.handling_s, "handled": self.handled,
                         "unauthorized": self.unauthorized}
        if (method, path) == ("GET", "/_bench/progress"):
            done = sum(1 for i in self.issues.values() if i.comment_mono)
            return 200, {"commented": done, "handled": self.handled, "writes": self.writes}
        return 404, {"message": "no such control route"}


def _issue_json(issue: Issue) -> dict[str, Any]:
    return {"assignees": [{"login": a} for a in issue.assignees],
            "labels": [{"name": x} for x in issue.labels]}


class Connection(asyncio.Protocol):
    """One client connection. httptools calls the on_* methods from inside feed_data;
    a request is answered in on_message_complete, before the parser reads on, which
    keeps answers in request order even when requests are pipelined."""

    transport: asyncio.Transport

    def __init__(self, state: State) -> None:
        self.state = state
        self.parser = httptools.HttpRequestParser(self)
        self.mono = self.wall = 0.0
        self.url = b""
        self.authorization: bytes | None = None
        self.body: list[bytes] = []
        self.keep_alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # from create_server: TCP

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.transport.close()  # the request was answered; we speak nothing else
        except httptools.HttpParserCallbackError:
            # A request we failed on (a body without the fields its route needs): the
            # traceback on stderr and the connection dropped, as http.server did.
            traceback.print_exc()  # the route's own error first: it is the context
            self.transport.close()
        except httptools.HttpParserError:
            # llhttp refuses bytes after an answered `Connection: close`: not an error.
            if not self.transport.is_closing():
                self._write(400, {"message": "Bad Request"}, keep_alive=False)

    def on_message_begin(self) -> None:
        # The request's arrival: before its URL, headers and body are read, so a comment
        # POST's recorded time does not include the time its body takes to come in.
        self.mono, self.wall = time.monotonic(), time.time()
        self.url = b""
        self.authorization = None
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url  # llhttp may hand the URL over in pieces, as it arrives

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.authorization is None and name.lower() == b"authorization":
            self.authorization = value

    def on_headers_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        if method not in _METHODS:  # what http.server answered for a method without do_X
            self._write(501, {"message": f"Unsupported method ({method.decode()!r})"},
                        self.keep_alive)
            return
        state = self.state
        path = self.url.decode("latin-1").split("?", 1)[0]
        authorization = self.authorization.decode("latin-1") if self.authorization else None
        status, answer = state.answer(method.decode(), path, authorization,
                                      b"".join(self.body), self.mono, self.wall)
        self._write(status, answer, self.keep_alive)
        state.handling_s += time.monotonic() - self.mono
        state.handled += 1

    def _write(self, status: int, answer: Any, keep_alive: bool) -> None:
        body = json.dumps(answer).encode()
        # One write, so one send() and one segment per answer: asyncio sends each write
        # at once, with Nagle off.
        self.transport.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: application/json; charset=utf-8\r\n"
            b"Content-Length: %d\r\n%s\r\n%s"
            % (status, HTTPStatus(status).phrase.encode(), len(body),
               b"" if keep_alive else b"Connection: close\r\n", body))
        if not keep_alive:
            self.transport.close()  # after what is buffered has been sent


async def serve(token: str) -> None:
    state = State(token)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Connection(state), "127.0.0.1", 0,
                                      backlog=128)
    print(server.sockets[0].getsockname()[1], flush=True)
    sys.stdout.close()
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.token))


if __name__ == "__main__":
    main()

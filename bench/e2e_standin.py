"""A GitHub REST stand-in for bench/e2e.py: the issue endpoints firstline's adapter calls.

    .venv/bin/python bench/e2e_standin.py --token TOKEN   # prints its port, then serves

Runs in its own process (so it never shares a GIL with the load generator or firstline),
on 127.0.0.1 only, a threaded `http.server` speaking HTTP/1.1 with keep-alive. State is
in memory, per issue, as GitHub keeps it:

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
    GET  /_bench/progress how many issues have a comment (cheap, for polling)
    GET  /_bench/results  per issue: times, comments, assignees; plus request counts and
                          the time spent handling requests (to show the stand-in is not
                          the bottleneck)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_ISSUE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)(?P<rest>/[a-z]+)?")


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


class State:
    def __init__(self, token: str) -> None:
        self.token = token
        self.lock = threading.Lock()
        self.issues: dict[tuple[str, int], Issue] = {}
        self.counts: dict[str, int] = {}
        self.handling_s = 0.0  # time from request arrival to answer written, summed
        self.handled = 0
        self.unauthorized = 0


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, state: State) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.state = state


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the adapter's httpx client expects
    # One write per answer, sent at once: headers and body written separately, with Nagle
    # on, meet the client's delayed ACK and cost 40 ms per request on Linux.
    wbufsize = 1 << 16  # flushed by handle_one_request after each answer
    disable_nagle_algorithm = True
    server: Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: it would cost more than the answers

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        mono, wall = time.monotonic(), time.time()
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        if path.startswith("/_bench/"):
            status, answer = self._control(method, path, raw)
        elif self.headers.get("Authorization") != f"Bearer {state.token}":
            with state.lock:
                state.unauthorized += 1
            status, answer = 401, {"message": "Bad credentials"}
        else:
            status, answer = self._github(method, path, raw, mono, wall)
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        with state.lock:
            state.handling_s += time.monotonic() - mono
            state.handled += 1

    def _github(self, method: str, path: str, raw: bytes, mono: float,
                wall: float) -> tuple[int, Any]:
        state = self.server.state
        match = _ISSUE.fullmatch(path)
        rest = (match["rest"] or "") if match else "?"
        route = f"{method} issue{rest}"
        with state.lock:
            state.counts[route] = state.counts.get(route, 0) + 1
            issue = state.issues.get((match["repo"], int(match["n"]))) if match else None
            if issue is None:
                return 404, {"message": "Not Found"}
            issue.requests += 1
            if issue.first_mono is None:
                issue.first_mono, issue.first_wall = mono, wall
            body = json.loads(raw) if raw else {}
            if (method, rest) == ("GET", ""):
                return 200, _issue_json(issue)
            if (method, rest) == ("POST", "/assignees"):
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
        state = self.server.state
        if (method, path) == ("POST", "/_bench/issues"):
            spec = json.loads(raw)
            with state.lock:
                for n in range(spec["first"], spec["first"] + spec["count"]):
                    state.issues[(spec["repo"], n)] = Issue(list(spec["assignees"]))
            return 201, {"created": spec["count"]}
        if (method, path) == ("GET", "/_bench/results"):
            with state.lock:
                issues = {str(n): {"first_mono": i.first_mono, "first_wall": i.first_wall,
                                   "comment_mono": i.comment_mono,
                                   "comment_wall": i.comment_wall,
                                   "comments": i.comments, "assignees": i.assignees,
                                   "requests": i.requests}
                          for (_, n), i in state.issues.items()}
                return 200, {"issues": issues, "counts": state.counts,
                             "handling_s": state.handling_s, "handled": state.handled,
                             "unauthorized": state.unauthorized}
        if (method, path) == ("GET", "/_bench/progress"):
            with state.lock:
                done = sum(1 for i in state.issues.values() if i.comment_mono)
            return 200, {"commented": done, "handled": state.handled}
        return 404, {"message": "no such control route"}


def _issue_json(issue: Issue) -> dict[str, Any]:
    return {"assignees": [{"login": a} for a in issue.assignees],
            "labels": [{"name": x} for x in issue.labels]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    server = Server(State(args.token))
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()

"""A local stand-in for Jira Cloud's REST API v2 that records every request it receives.

Tests that drive the real `jira` client (which speaks `requests`, so no httpx mocking
applies) point `FIRSTLINE_JIRA_URL` at `JiraStandin.url` and then look at `requests`:
method, path, query, headers and JSON body, exactly as they reached the wire.

Answers come from two places, checked in this order:

1. canned replies per (method, path), set with `reply()`: consumed in order, the last one
   repeating, so "429 then 200" is `reply("GET", path, Reply(429, ...), Reply(200, ...))`;
   a `delay` holds the answer back to provoke a client timeout;
2. a small in-memory Jira (`add_issue()`): read and assign the assignee, read and edit
   labels, list and add comments (with comment properties), look comments up by id with
   `expand=properties`, create issues (`POST /issue`, answering the new id and key) and
   find them with `GET /search/jql` (`project = "K" AND labels = "L"`, the only JQL it
   reads). Unknown issues get Jira's 404 body.

`latency` holds every answer back that many seconds, as a real Jira's 100-500 ms do, and
`max_in_flight` tells how many requests were ever being served at once.

For outages: `trouble`, when set, sees each request first and may answer it instead of
Jira (a Reply: 429, 5xx...) or have Jira apply it and hold the answer back (a number of
seconds: a hang past the client's timeout); `refuse()` closes the listening socket, so
connections are refused until `accept()`. Each request is stamped with `clock()` as it
arrives; `applied` lists the writes the in-memory Jira carried out.

Usage:

    with JiraStandin(email="bot@example.com", token="t") as jira:
        jira.add_issue("OPS-7", "10042", assignee="cto-account")
        ...  # act against jira.url
        assert [r.method for r in jira.requests] == ["GET", "PUT"]
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

API = "/rest/api/2"
NOT_FOUND = {
    "errorMessages": ["Issue does not exist or you do not have permission to see it."],
    "errors": {},
}
UNAUTHORIZED = {"errorMessages": ["Client must be authenticated to access this resource."]}


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


@dataclass
class Issue:
    """The parts of a Jira issue firstline reads and writes."""

    id: str
    key: str
    assignee: str | None = None
    labels: list[str] = field(default_factory=list)
    comments: list[dict[str, Any]] = field(default_factory=list)
    summary: str = ""
    description: str = ""
    issue_type: str | None = None
    properties: list[Any] = field(default_factory=list)

    def add_comment(self, comment_id: int, body: str, properties: list[Any]) -> dict[str, Any]:
        """Store a comment the way Jira returns it; properties only show when expanded."""
        comment = {"id": str(comment_id), "body": body, "properties": properties,
                   "self": f"{API}/issue/{self.id}/comment/{comment_id}",
                   "created": "2026-11-21T10:00:00.000+0000"}
        self.comments.append(comment)
        return comment


Route = Callable[["JiraStandin", re.Match[str], Recorded], Reply]
Trouble = Callable[[Recorded], "Reply | float | None"]


class JiraStandin:
    """Serve a recording Jira on 127.0.0.1 on a free port, in a background thread."""

    def __init__(self, email: str | None = None, token: str | None = None) -> None:
        self.requests: list[Recorded] = []
        self.issues: dict[str, Issue] = {}
        self.lookup_page = 1000  # comments per answer to POST /comment/list
        self._canned: dict[tuple[str, str], list[Reply]] = {}
        self._once: dict[tuple[str, str], list[Reply]] = {}
        self.slow: dict[tuple[str, str], float] = {}  # apply, then answer after N seconds
        self.trouble: Trouble | None = None  # see the module's docstring
        self.clock: Callable[[], float] = time.monotonic
        self.applied: list[Recorded] = []  # writes the in-memory Jira carried out
        self.latency = 0.0  # seconds every answer is held back (after applying it)
        self.in_flight = 0  # requests received and not yet answered
        self.max_in_flight = 0
        self._auth = _basic(email, token) if email and token else None
        self._lock = threading.Lock()
        self._next_comment = 10000
        self._next_issue = 30000
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        self._thread = self._serving()

    def _serving(self) -> threading.Thread:
        return threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        """Return the site URL to use as FIRSTLINE_JIRA_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> JiraStandin:
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
        self._server = _Server(self._server.server_address[:2], _Handler)
        self._server.standin = self
        self._thread = self._serving()
        self._thread.start()

    def __enter__(self) -> JiraStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_issue(self, key: str, id: str, assignee: str | None = None,
                  labels: Iterable[str] = (), comments: Iterable[tuple[str, list[Any]]] = ()
                  ) -> Issue:
        """Create an issue; `comments` are (body, properties) pairs."""
        issue = Issue(id=id, key=key, assignee=assignee, labels=list(labels))
        for body, properties in comments:
            issue.add_comment(self.next_comment_id(), body, properties)
        self.issues[id] = issue
        return issue

    def reply(self, method: str, path: str, *replies: Reply) -> None:
        """Answer (method, path) with these replies in turn, the last one repeating."""
        self._canned[(method.upper(), path)] = list(replies)

    def fail_once(self, method: str, path: str, *replies: Reply) -> None:
        """Answer the next requests to (method, path) with these, then as the model would."""
        self._once.setdefault((method.upper(), path), []).extend(replies)

    def writes(self) -> list[Recorded]:
        """Return the requests that change something (looking comments up does not)."""
        return [r for r in self.requests
                if r.method != "GET" and r.path != f"{API}/comment/list"]

    # -- serving --------------------------------------------------------------------

    def answer(self, request: Recorded) -> Reply:
        """Record a request and choose its answer: canned first, then the model."""
        with self._lock:
            self.requests.append(request)
            if self._auth is not None and request.headers.get("authorization") != self._auth:
                return Reply(401, UNAUTHORIZED)
            trouble = self.trouble(request) if self.trouble is not None else None
            if isinstance(trouble, Reply):
                return trouble
            once = self._once.get((request.method, request.path))
            if once:
                return once.pop(0)
            canned = self._canned.get((request.method, request.path))
            if canned:
                return canned.pop(0) if len(canned) > 1 else canned[0]
            for method, pattern, route in _ROUTES:
                match = pattern.fullmatch(request.path)
                if method == request.method and match:
                    reply = route(self, match, request)
                    if request.method != "GET" and reply.status < 300 and (
                            request.path != f"{API}/comment/list"):
                        self.applied.append(request)
                    slow = trouble or self.slow.get((request.method, request.path), 0.0)
                    return replace(reply, delay=slow) if slow else reply
        return Reply(404, {"errorMessages": [f"No route for {request.method} {request.path}"]})

    def serving(self, change: int) -> None:
        """Count a request in (+1) or out (-1) of those being served right now."""
        with self._lock:
            self.in_flight += change
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def issue(self, id_or_key: str) -> Issue | None:
        """Find an issue by id or key, as Jira's /issue/{issueIdOrKey} does."""
        found = self.issues.get(id_or_key)
        return found or next((i for i in self.issues.values() if i.key == id_or_key), None)

    def created(self, project: str) -> list[Issue]:
        """Return the issues created through the API in a project, oldest first."""
        return [i for i in self.issues.values()
                if i.key.startswith(f"{project}-") and i.issue_type is not None]

    def next_issue_id(self) -> int:
        self._next_issue += 1
        return self._next_issue

    def next_comment_id(self) -> int:
        """Number comments the way Jira does: numeric strings, increasing."""
        self._next_comment += 1
        return self._next_comment


# -- the in-memory Jira ------------------------------------------------------------------


def _get_issue(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """GET /issue/{id}: only the fields asked for, as Jira does with `fields=`."""
    issue = jira.issue(match[1])
    if issue is None:
        return Reply(404, NOT_FOUND)
    wanted = ",".join(request.query.get("fields", ["assignee,labels"])).split(",")
    everything = {"assignee": _user(issue.assignee), "labels": issue.labels}
    fields = {name: everything[name] for name in wanted if name in everything}
    return Reply(200, {"id": issue.id, "key": issue.key, "self": f"{API}/issue/{issue.id}",
                       "fields": fields})


def _put_assignee(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """PUT /issue/{id}/assignee {"accountId": id | null}: 204."""
    issue = jira.issue(match[1])
    if issue is None:
        return Reply(404, NOT_FOUND)
    body = request.json
    if not isinstance(body, dict) or "accountId" not in body:
        return Reply(400, {"errorMessages": [], "errors": {"accountId": "accountId is required"}})
    issue.assignee = body["accountId"]
    return Reply(204)


def _put_issue(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """PUT /issue/{id} with `update.labels` add/remove or `fields.labels`: 204."""
    issue = jira.issue(match[1])
    if issue is None:
        return Reply(404, NOT_FOUND)
    body = request.json if isinstance(request.json, dict) else {}
    for op in body.get("update", {}).get("labels", []):
        if "add" in op and op["add"] not in issue.labels:
            issue.labels.append(op["add"])
        if "remove" in op and op["remove"] in issue.labels:
            issue.labels.remove(op["remove"])
    if "labels" in body.get("fields", {}):
        issue.labels = list(body["fields"]["labels"])
    return Reply(204)


def _get_comments(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """GET /issue/{id}/comment: a PageOfComments; properties are not part of it."""
    issue = jira.issue(match[1])
    if issue is None:
        return Reply(404, NOT_FOUND)
    start = int(request.query.get("startAt", ["0"])[0])
    size = int(request.query.get("maxResults", ["50"])[0])
    page = [{k: v for k, v in c.items() if k != "properties"}
            for c in issue.comments[start : start + size]]
    return Reply(200, {"startAt": start, "maxResults": size, "total": len(issue.comments),
                       "comments": page})


def _post_comment(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """POST /issue/{id}/comment {"body", "properties"?}: 201 with the comment."""
    issue = jira.issue(match[1])
    if issue is None:
        return Reply(404, NOT_FOUND)
    body = request.json if isinstance(request.json, dict) else {}
    if not body.get("body"):
        return Reply(400, {"errorMessages": [], "errors": {"comment": "Comment body can not be "
                                                                      "empty!"}})
    comment_id = jira.next_comment_id()  # routes run under the stand-in's lock
    comment = issue.add_comment(comment_id, body["body"], list(body.get("properties", [])))
    return Reply(201, {k: v for k, v in comment.items() if k != "properties"})


def _comment_list(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """POST /comment/list {"ids": [...]}: the comments, with properties if expanded."""
    body = request.json if isinstance(request.json, dict) else {}
    wanted = {str(i) for i in body.get("ids", [])}
    expand = ",".join(request.query.get("expand", [])).split(",")
    found = [c if "properties" in expand else {k: v for k, v in c.items() if k != "properties"}
             for issue in jira.issues.values() for c in issue.comments if c["id"] in wanted]
    values = found[: jira.lookup_page]
    return Reply(200, {"startAt": 0, "maxResults": jira.lookup_page, "total": len(values),
                       "isLast": len(values) == len(found), "values": values})


def _create_issue(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """POST /issue {"fields": {...}, "properties": [...]}: 201 with the new id and key."""
    body = request.json if isinstance(request.json, dict) else {}
    fields = body.get("fields") if isinstance(body.get("fields"), dict) else {}
    project = (fields.get("project") or {}).get("key")
    missing = {name: f"{name} is required" for name in ("project", "summary", "issuetype")
               if not fields.get(name)}
    if missing:
        return Reply(400, {"errorMessages": [], "errors": missing})
    number = 1 + sum(1 for i in jira.issues.values() if i.key.startswith(f"{project}-"))
    issue = jira.add_issue(f"{project}-{number}", str(jira.next_issue_id()),
                           assignee=(fields.get("assignee") or {}).get("accountId"),
                           labels=fields.get("labels") or [])
    issue.summary, issue.description = fields["summary"], fields.get("description") or ""
    issue.issue_type = fields["issuetype"].get("name")
    issue.properties = list(body.get("properties") or [])
    return Reply(201, {"id": issue.id, "key": issue.key, "self": f"{API}/issue/{issue.id}"})


_JQL = re.compile(r'project = "(?P<project>[^"]+)" AND labels = "(?P<label>[^"]+)"')


def _search_jql(jira: JiraStandin, match: re.Match[str], request: Recorded) -> Reply:
    """GET /search/jql?jql=...: the issues of a project carrying a label."""
    found = _JQL.fullmatch(request.query.get("jql", [""])[0])
    if found is None:
        return Reply(400, {"errorMessages": ["the stand-in reads only project and labels"]})
    hits = [i for i in jira.issues.values() if i.key.startswith(f"{found['project']}-")
            and found["label"] in i.labels]
    return Reply(200, {"issues": [{"id": i.id, "key": i.key, "self": f"{API}/issue/{i.id}",
                                   "fields": {"summary": i.summary}} for i in hits],
                       "isLast": True})


_ROUTES: list[tuple[str, re.Pattern[str], Route]] = [
    ("POST", re.compile(rf"{API}/issue"), _create_issue),
    ("GET", re.compile(rf"{API}/search/jql"), _search_jql),
    ("GET", re.compile(rf"{API}/issue/([^/]+)"), _get_issue),
    ("PUT", re.compile(rf"{API}/issue/([^/]+)"), _put_issue),
    ("PUT", re.compile(rf"{API}/issue/([^/]+)/assignee"), _put_assignee),
    ("GET", re.compile(rf"{API}/issue/([^/]+)/comment"), _get_comments),
    ("POST", re.compile(rf"{API}/issue/([^/]+)/comment"), _post_comment),
    ("POST", re.compile(rf"{API}/comment/list"), _comment_list),
]


def _user(account: str | None) -> dict[str, Any] | None:
    """Render an account id as Jira's user object."""
    if account is None:
        return None
    return {"accountId": account, "displayName": account, "active": True}


def _basic(email: str, token: str) -> str:
    """Return the Authorization header value Basic auth with these credentials sends."""
    return "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode()


# -- HTTP plumbing -------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Threaded server that does not wait for slow (delayed) handlers when closing."""

    block_on_close = False
    daemon_threads = True
    request_queue_size = 64  # many clients connecting at once (a concurrent performer)
    standin: JiraStandin


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
            # apart; a `kill -9` can fall between): no request arrived, as for Jira.
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

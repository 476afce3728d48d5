"""A local stand-in for Jira Cloud's REST API v2 that records every request it receives.

Tests that drive the real `jira` client (which speaks `requests`, so no httpx mocking
applies) point `FIRSTLINE_JIRA_URL` at `JiraStandin.url` and then look at `requests`:
method, path, query, headers and JSON body, exactly as they reached the wire.

Answers come from two places (after `trouble` and `deny()`), checked in this order:

1. canned replies per (method, path), set with `reply()`: consumed in order, the last one
   repeating, so "429 then 200" is `reply("GET", path, Reply(429, ...), Reply(200, ...))`;
   a `delay` holds the answer back to provoke a client timeout;
2. a small in-memory Jira (`add_issue()`): read and assign the assignee, read and edit
   labels, list and add comments (with comment properties), look comments up by id with
   `expand=properties`, create issues (`POST /issue`, answering the new id and key) and
   find them with `GET /search/jql` (`project = "K" AND labels = "L"`, the only JQL it
   reads). Unknown issues get Jira's 404 body.

Canned replies, `deny()`, `latency`, `trouble` (outages), `refuse()`/`accept()`, request
times and `applied` (the writes the in-memory Jira carried out) come from
tests/standin_http.py, which every stand-in served over real HTTP shares.

Usage:

    with JiraStandin(email="bot@example.com", token="t") as jira:
        jira.add_issue("OPS-7", "10042", assignee="cto-account")
        ...  # act against jira.url
        assert [r.method for r in jira.requests] == ["GET", "PUT"]
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.standin_http import HttpStandin, Recorded, Reply, Trouble

__all__ = ["API", "Issue", "JiraStandin", "Recorded", "Reply", "Trouble"]

API = "/rest/api/2"
NOT_FOUND = {
    "errorMessages": ["Issue does not exist or you do not have permission to see it."],
    "errors": {},
}
UNAUTHORIZED = {"errorMessages": ["Client must be authenticated to access this resource."]}


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


class JiraStandin(HttpStandin):
    """Serve a recording Jira on 127.0.0.1 on a free port, in a background thread."""

    def __init__(self, email: str | None = None, token: str | None = None) -> None:
        super().__init__()
        self.issues: dict[str, Issue] = {}
        self.lookup_page = 1000  # comments per answer to POST /comment/list
        self._auth = _basic(email, token) if email and token else None
        self._next_comment = 10000
        self._next_issue = 30000

    def add_issue(self, key: str, id: str, assignee: str | None = None,
                  labels: Iterable[str] = (), comments: Iterable[tuple[str, list[Any]]] = ()
                  ) -> Issue:
        """Create an issue; `comments` are (body, properties) pairs."""
        issue = Issue(id=id, key=key, assignee=assignee, labels=list(labels))
        for body, properties in comments:
            issue.add_comment(self.next_comment_id(), body, properties)
        self.issues[id] = issue
        return issue

    # -- the model (tests/standin_http.py serves it) ---------------------------------

    def authorized(self, request: Recorded) -> Reply | None:
        if self._auth is not None and request.headers.get("authorization") != self._auth:
            return Reply(401, UNAUTHORIZED)
        return None

    def is_write(self, request: Recorded) -> bool:
        """Looking comments up (POST /comment/list) changes nothing."""
        return request.method != "GET" and request.path != f"{API}/comment/list"

    def route(self, request: Recorded) -> Reply | None:
        for method, pattern, route in _ROUTES:
            match = pattern.fullmatch(request.path)
            if method == request.method and match:
                return route(self, match, request)
        return None

    def no_route(self, request: Recorded) -> Reply:
        return Reply(404, {"errorMessages": [f"No route for {request.method} {request.path}"]})

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

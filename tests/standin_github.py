"""A GitHub REST stand-in on pytest-httpx: issues with assignees, comments and labels, a
repository's issues to open and list (newest first, filtered by labels, paged by
`Link: rel="next"`), and webhooks' delivery logs (list with cursor pages, redeliver).

It keeps state, so a retry sees what an earlier attempt did, and it can fail chosen
requests first (`fail`), to test retries, optionally after applying them (a timeout or
500 on a write that took effect). Every request stays in `httpx_mock`. As GitHub does, it
drops assignees who may not be assigned (`unassignable`) without saying so.

A hook's log (`add_delivery`) answers like GitHub's: newest first, `per_page` at most
100, a `Link: <…?cursor=…>; rel="next"` while more remain; a redelivery request adds an
attempt with the same guid, `redelivery: true` and `redelivery_status` (200 by default:
firstline is up again), and is kept in `redeliveries`.

`GitHubServer` serves the same model over real HTTP (tests/standin_http.py), for tests
that need the wire: refused connections, hangs past the client's timeout, request times.
"""

from __future__ import annotations

import itertools
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from pytest_httpx import HTTPXMock

from tests.standin_http import HttpStandin, Recorded, Reply

_ISSUE = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues/(?P<n>\d+)(?P<rest>/.*)?")
_ISSUES = re.compile(r"/repos/(?P<repo>[^/]+/[^/]+)/issues")
_HOOK = re.compile(r"(?P<hook>/(?:repos/[^/]+/[^/]+|orgs/[^/]+)/hooks/\d+)/deliveries"
                   r"(?:/(?P<id>\d+)/attempts)?")


@dataclass
class Issue:
    assignees: list[str] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    title: str = ""
    body: str = ""


@dataclass
class GitHubStandIn:
    base: str
    issues: dict[tuple[str, int], Issue] = field(default_factory=dict)
    faults: list[tuple[str, str, httpx.Response | Exception, bool]] = field(
        default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)  # performer threads call in
    unassignable: set[str] = field(default_factory=set)  # logins without push access
    hooks: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # path -> newest first
    redeliveries: list[tuple[str, int]] = field(default_factory=list)  # (hook path, id)
    redelivery_status: int = 200
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def install(self, httpx_mock: HTTPXMock) -> GitHubStandIn:
        httpx_mock.add_callback(self._handle, url=re.compile(re.escape(self.base) + ".*"),
                                is_reusable=True)
        return self

    def add(self, repo: str, number: int, assignees: list[str]) -> Issue:
        self.issues[(repo, number)] = Issue(list(assignees))
        return self.issues[(repo, number)]

    def add_delivery(self, hook: str, guid: str, status_code: int, at: datetime,
                     redelivery: bool = False) -> dict[str, Any]:
        """Record an attempt in a hook's log (`hook` is its API path, /repos/o/r/hooks/1)."""
        attempt = {"id": next(self._ids), "guid": guid, "delivered_at": at.astimezone(UTC)
                   .isoformat().replace("+00:00", "Z"), "redelivery": redelivery,
                   "duration": 0.1, "status": "OK" if status_code == 200 else "failed",
                   "status_code": status_code, "event": "issues", "action": "opened",
                   "installation_id": None, "repository_id": 1296269}
        log = self.hooks.setdefault(hook, [])
        log.append(attempt)
        log.sort(key=lambda a: (a["delivered_at"], a["id"]), reverse=True)
        return attempt

    def fail(self, method: str, suffix: str, answer: httpx.Response | Exception,
             applied: bool = False) -> None:
        """Answer the next `method` request whose path ends with `suffix` with `answer`;
        `applied` carries the request out first, as GitHub may before a timeout or 5xx."""
        self.faults.append((method, suffix, answer, applied))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            for i, (method, suffix, answer, applied) in enumerate(self.faults):
                if request.method == method and request.url.path.endswith(suffix):
                    del self.faults[i]
                    if applied:
                        self._apply(request)
                    if isinstance(answer, Exception):
                        raise answer
                    return answer
            return self._apply(request)

    def opened(self, repo: str) -> list[Issue]:
        """Return the repository's issues in the order they were opened."""
        return [issue for (name, _), issue in sorted(self.issues.items()) if name == repo]

    def _apply(self, request: httpx.Request) -> httpx.Response:
        hook = _HOOK.fullmatch(request.url.path)
        if hook is not None:
            return self._delivery_log(request, hook["hook"], hook["id"])
        listing = _ISSUES.fullmatch(request.url.path)
        if listing is not None:
            return self._issues(request, listing["repo"])
        match = _ISSUE.fullmatch(request.url.path)
        if match is None or (match["repo"], int(match["n"])) not in self.issues:
            return httpx.Response(404, json={"message": "Not Found"})
        issue = self.issues[(match["repo"], int(match["n"]))]
        body = orjson.loads(request.content) if request.content else {}
        return self._route(request.method, match["rest"] or "", issue, body)

    def _route(self, method: str, rest: str, issue: Issue, body: Any) -> httpx.Response:
        if (method, rest) == ("GET", ""):
            return httpx.Response(200, json=self._json(issue))
        if (method, rest) == ("POST", "/assignees"):
            issue.assignees += [a for a in body["assignees"] if a not in issue.assignees]
            return httpx.Response(201, json=self._json(issue))
        if (method, rest) == ("DELETE", "/assignees"):
            issue.assignees = [a for a in issue.assignees if a not in body["assignees"]]
            return httpx.Response(200, json=self._json(issue))
        if (method, rest) == ("GET", "/comments"):
            return httpx.Response(200, json=[{"id": i, "body": b}
                                             for i, b in enumerate(issue.comments)])
        if (method, rest) == ("POST", "/comments"):
            issue.comments.append(body["body"])
            return httpx.Response(201, json={"id": len(issue.comments), "body": body["body"]})
        if (method, rest) == ("POST", "/labels"):
            issue.labels += [x for x in body["labels"] if x not in issue.labels]
            return httpx.Response(200, json=[{"name": x} for x in issue.labels])
        return httpx.Response(404, json={"message": f"no route {method} {rest}"})

    def _issues(self, request: httpx.Request, repo: str) -> httpx.Response:
        """POST opens an issue (201, the issue); GET lists them newest first."""
        if request.method == "POST":
            body = orjson.loads(request.content)
            number = max((n for name, n in self.issues if name == repo), default=0) + 1
            self.issues[(repo, number)] = Issue(
                [a for a in body.get("assignees", []) if a not in self.unassignable], [],
                list(body.get("labels", [])), body["title"], body.get("body") or "")
            return httpx.Response(201, json=self._listed(repo, number))
        params = request.url.params
        wanted = [x for x in params.get("labels", "").split(",") if x]
        numbers = sorted((n for (name, n), issue in self.issues.items() if name == repo
                          and all(x in issue.labels for x in wanted)), reverse=True)
        size, page = int(params.get("per_page", "30")), int(params.get("page", "1"))
        shown = numbers[(page - 1) * size:page * size]
        headers = {}
        if len(numbers) > page * size:
            later = request.url.copy_merge_params({"page": str(page + 1)})
            headers["Link"] = f'<{later}>; rel="next"'
        return httpx.Response(200, json=[self._listed(repo, n) for n in shown],
                              headers=headers)

    def _listed(self, repo: str, number: int) -> dict[str, Any]:
        issue = self.issues[(repo, number)]
        return {**self._json(issue), "number": number, "title": issue.title,
                "body": issue.body,
                "html_url": f"https://github.com/{repo}/issues/{number}"}

    def _delivery_log(self, request: httpx.Request, hook: str,
                      attempt: str | None) -> httpx.Response:
        if hook not in self.hooks:
            return httpx.Response(404, json={"message": "Not Found"})
        log = self.hooks[hook]
        if attempt is not None and request.method == "POST":
            original = next((a for a in log if a["id"] == int(attempt)), None)
            if original is None:
                return httpx.Response(404, json={"message": "Not Found"})
            self.redeliveries.append((hook, int(attempt)))
            self.add_delivery(hook, original["guid"], self.redelivery_status,
                              datetime.now(UTC), redelivery=True)
            return httpx.Response(202, json={})
        per_page = min(int(request.url.params.get("per_page", "30")), 100)
        cursor = request.url.params.get("cursor")
        start = next((i for i, a in enumerate(log) if str(a["id"]) == cursor), 0) \
            if cursor else 0
        page = log[start:start + per_page]
        headers = {}
        if start + per_page < len(log):
            after = log[start + per_page]["id"]
            headers["link"] = (f'<{self.base}{hook}/deliveries?per_page={per_page}'
                               f'&cursor={after}>; rel="next"')
        return httpx.Response(200, json=page, headers=headers)

    @staticmethod
    def _json(issue: Issue) -> dict[str, Any]:
        return {"assignees": [{"login": a} for a in issue.assignees],
                "labels": [{"name": x} for x in issue.labels]}


class GitHubServer(HttpStandin):
    """Serve a `GitHubStandIn` (as `model`) on 127.0.0.1, asking for the token as GitHub
    does; the model's issues are added with `model.add()`."""

    def __init__(self, token: str) -> None:
        super().__init__()
        self.model = GitHubStandIn(self.url)
        self._token = token

    def authorized(self, request: Recorded) -> Reply | None:
        if request.headers.get("authorization") != f"Bearer {self._token}":
            return Reply(401, {"message": "Bad credentials",
                               "documentation_url": "https://docs.github.com/rest"})
        return None

    def route(self, request: Recorded) -> Reply | None:
        query = urlencode(request.query, doseq=True)
        url = f"{self.url}{request.path}{'?' if query else ''}{query}"
        answer = self.model._apply(httpx.Request(request.method, url, content=request.body))
        links = {k: v for k, v in answer.headers.items() if k.lower() == "link"}
        return Reply(answer.status_code, answer.json() if answer.content else None, links)

"""A Linear GraphQL stand-in on pytest-httpx: teams by key, team labels (found or
created), issues created with a client-chosen id and found by it (review issues), and
the issues firstline hands over (`add_issue`): their assignee read and set, comments
created with a client-chosen id and found by it.

It answers HTTP 200 with `errors` for a refusal of a write (an unknown team, an id
already taken), and a create answers what it made; an issue it does not know is HTTP 400
with `errors` ("Entity not found: Issue", code INVALID_INPUT). `fail` answers the next
request of an operation with a chosen response or exception, optionally after applying
it (a create that took effect and then timed out). Every request stays in `httpx_mock`.

`LinearServer` serves the same model over real HTTP (tests/standin_http.py), for tests
that need the wire: refused connections, hangs past the client's timeout, request times.
"""

from __future__ import annotations

import re
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pytest_httpx import HTTPXMock

from tests.standin_http import HttpStandin, Recorded, Reply

_OPERATION = re.compile(r"\s*(?:query|mutation) (\w+)")


@dataclass
class LinearStandIn:
    url: str
    teams: dict[str, str] = field(default_factory=dict)  # key -> id
    labels: dict[str, list[dict[str, str]]] = field(default_factory=dict)  # team id -> labels
    issues: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> issue
    faults: list[tuple[str, httpx.Response | Exception, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def install(self, httpx_mock: HTTPXMock) -> LinearStandIn:
        httpx_mock.add_callback(self._handle, url=self.url, is_reusable=True)
        return self

    def add_issue(self, team_key: str, assignee: str | None) -> str:
        """Add an issue to a team (made if missing) with an assignee; return its id."""
        team = self.teams.get(team_key) or self.add_team(team_key)
        number = 1 + sum(1 for i in self.issues.values() if i["teamId"] == team)
        issue = {"id": str(uuid.uuid4()), "teamId": team, "identifier": f"{team_key}-{number}",
                 "assigneeId": assignee, "comments": []}
        issue["url"] = f"https://linear.app/acme/issue/{issue['identifier']}"
        self.issues[issue["id"]] = issue
        return str(issue["id"])

    def add_team(self, key: str) -> str:
        self.teams[key] = str(uuid.uuid4())
        self.labels[self.teams[key]] = []
        return self.teams[key]

    def fail(self, operation: str, answer: httpx.Response | Exception,
             applied: bool = False) -> None:
        self.faults.append((operation, answer, applied))

    def _handle(self, request: httpx.Request) -> httpx.Response:
        body = orjson.loads(request.content)
        found = _OPERATION.match(body["query"])
        operation = found.group(1) if found else ""
        with self.lock:
            for i, (name, answer, applied) in enumerate(self.faults):
                if name == operation:
                    del self.faults[i]
                    if applied:
                        self._answer(operation, body["variables"])
                    if isinstance(answer, Exception):
                        raise answer
                    return answer
            return self._answer(operation, body["variables"])

    def answer(self, body: Any) -> httpx.Response:
        """Answer one GraphQL request body ({"query", "variables"}) from the model."""
        found = _OPERATION.match(body["query"])
        return self._answer(found.group(1) if found else "", body["variables"])

    def _answer(self, operation: str, variables: dict[str, Any]) -> httpx.Response:
        handlers = {"TeamByKey": self._team_by_key, "TeamLabel": self._team_label,
                    "CreateLabel": self._create_label, "FindIssue": self._find_issue,
                    "CreateIssue": self._create_issue, "IssueState": self._issue_state,
                    "SetAssignee": self._set_assignee, "FindComment": self._find_comment,
                    "CreateComment": self._create_comment}
        if operation not in handlers:
            return _errors(f"the stand-in does not know {operation}")
        return handlers[operation](variables)

    def _team_by_key(self, v: dict[str, Any]) -> httpx.Response:
        team = self.teams.get(v["key"])
        return _data({"teams": {"nodes": [{"id": team, "key": v["key"]}] if team else []}})

    def _team_label(self, v: dict[str, Any]) -> httpx.Response:
        nodes = [x for x in self.labels.get(v["teamId"], [])
                 if x["name"].casefold() == v["name"].casefold()]
        return _data({"team": {"labels": {"nodes": nodes[:1]}}})

    def _create_label(self, v: dict[str, Any]) -> httpx.Response:
        label = {"id": str(uuid.uuid4()), "name": v["input"]["name"]}
        self.labels.setdefault(v["input"]["teamId"], []).append(label)
        return _data({"issueLabelCreate": {"success": True, "issueLabel": label}})

    def _find_issue(self, v: dict[str, Any]) -> httpx.Response:
        issue = self.issues.get(v["id"])
        return _data({"issues": {"nodes": [_shown(issue)] if issue else []}})

    def _create_issue(self, v: dict[str, Any]) -> httpx.Response:
        fields = v["input"]
        key = next((k for k, t in self.teams.items() if t == fields["teamId"]), None)
        if key is None:
            return _errors("Entity not found: Team")
        if fields.get("id") in self.issues:
            return _errors("duplicate key value violates unique constraint")
        number = 1 + sum(1 for i in self.issues.values() if i["teamId"] == fields["teamId"])
        issue = {**fields, "id": fields.get("id") or str(uuid.uuid4()),
                 "identifier": f"{key}-{number}"}
        issue["url"] = f"https://linear.app/acme/issue/{issue['identifier']}"
        self.issues[issue["id"]] = issue
        return _data({"issueCreate": {"success": True, "issue": _shown(issue)}})


    def _issue_state(self, v: dict[str, Any]) -> httpx.Response:
        issue = self.issues.get(v["id"])
        if issue is None:
            return _not_found()
        team = next(k for k, t in self.teams.items() if t == issue["teamId"])
        return _data({"issue": {"id": issue["id"], "assignee": _user(issue.get("assigneeId")),
                                "team": {"id": issue["teamId"], "key": team},
                                "labels": {"nodes": []}}})

    def _set_assignee(self, v: dict[str, Any]) -> httpx.Response:
        issue = self.issues.get(v["id"])
        if issue is None:
            return _not_found()
        issue["assigneeId"] = v["assigneeId"]
        return _data({"issueUpdate": {"success": True, "issue": {
            "id": issue["id"], "assignee": _user(issue["assigneeId"])}}})

    def _find_comment(self, v: dict[str, Any]) -> httpx.Response:
        issue = self.issues.get(v["id"])
        if issue is None:
            return _not_found()
        nodes = [{"id": c["id"]} for c in issue.get("comments", []) if c["id"] == v["commentId"]]
        return _data({"issue": {"comments": {"nodes": nodes}}})

    def _create_comment(self, v: dict[str, Any]) -> httpx.Response:
        fields = v["input"]
        issue = self.issues.get(fields["issueId"])
        if issue is None:
            return _not_found()
        comments = issue.setdefault("comments", [])
        if any(c["id"] == fields.get("id") for c in comments):
            return _errors("duplicate key value violates unique constraint")
        comment = {"id": fields.get("id") or str(uuid.uuid4()), "body": fields["body"]}
        comments.append(comment)
        return _data({"commentCreate": {"success": True, "comment": {"id": comment["id"]}}})


class LinearServer(HttpStandin):
    """Serve a `LinearStandIn` (as `model`) at /graphql on 127.0.0.1, asking for the API
    key as Linear does (bare, in `Authorization`)."""

    PATH = "/graphql"

    def __init__(self, key: str) -> None:
        super().__init__()
        self.model = LinearStandIn(f"{self.url}{self.PATH}")
        self._key = key

    def authorized(self, request: Recorded) -> Reply | None:
        if request.headers.get("authorization") != self._key:
            return Reply(400, {"errors": [{"message": "Authentication required, not "
                                           "authenticated", "extensions": {
                                               "code": "AUTHENTICATION_ERROR"}}]})
        return None

    def is_write(self, request: Recorded) -> bool:
        """A mutation changes something; a query does not."""
        return str((request.json or {}).get("query", "")).lstrip().startswith("mutation")

    def route(self, request: Recorded) -> Reply | None:
        if (request.method, request.path) != ("POST", self.PATH):
            return None
        answer = self.model.answer(request.json)
        return Reply(answer.status_code, answer.json())

    def took_effect(self, request: Recorded, reply: Reply) -> bool:
        """A 200 with `errors` is a refusal: nothing was carried out."""
        return super().took_effect(request, reply) and not reply.json.get("errors")


def _user(account: str | None) -> dict[str, str] | None:
    return {"id": account} if account else None


def _not_found() -> httpx.Response:
    return httpx.Response(400, json={"data": None, "errors": [{
        "message": "Entity not found: Issue",
        "extensions": {"code": "INVALID_INPUT", "userPresentableMessage":
                       "Could not find referenced Issue."}}]})


def _shown(issue: dict[str, Any]) -> dict[str, Any]:
    return {"id": issue["id"], "identifier": issue["identifier"], "url": issue["url"]}


def _data(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data})


def _errors(message: str) -> httpx.Response:
    return httpx.Response(200, json={"data": None, "errors": [{"message": message}]})

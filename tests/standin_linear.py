"""A Linear GraphQL stand-in on pytest-httpx for filing review issues: teams by key, team
labels (found or created), issues created with a client-chosen id and found by it.

Like Linear it answers HTTP 200 with `errors` for a refusal (an unknown team, an id
already taken), and a create answers the issue it made. `fail` answers the next request
of an operation with a chosen response or exception, optionally after applying it (a
create that took effect and then timed out). Every request stays in `httpx_mock`.
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

    def _answer(self, operation: str, variables: dict[str, Any]) -> httpx.Response:
        handlers = {"TeamByKey": self._team_by_key, "TeamLabel": self._team_label,
                    "CreateLabel": self._create_label, "FindIssue": self._find_issue,
                    "CreateIssue": self._create_issue}
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


def _shown(issue: dict[str, Any]) -> dict[str, Any]:
    return {"id": issue["id"], "identifier": issue["identifier"], "url": issue["url"]}


def _data(data: Any) -> httpx.Response:
    return httpx.Response(200, json={"data": data})


def _errors(message: str) -> httpx.Response:
    return httpx.Response(200, json={"data": None, "errors": [{"message": message}]})

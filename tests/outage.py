"""Each vendor's part in the vendor-outage test (tests/test_reliability.py): its stand-in
served over real HTTP, the real outbound adapter pointed at it, the items firstline
hands over, the items the vendor refuses, and its own way of saying "rate limited".

Every vendor gets the same outage (`Outage`): 429-style rate limits asking for a second,
500, 503 and hangs past the client's timeout in turn, and the first request about one
item (the patient) rate-limited for two hours, in the vendor's own words:

- Jira: 429 with Retry-After;
- GitHub: a secondary limit (429 with Retry-After) or, for long waits, the primary one
  (403, `x-ratelimit-remaining: 0`, `x-ratelimit-reset` in epoch seconds);
- Linear: the GraphQL error RATELIMITED, HTTP 400 (HTTP 429 for long waits), with
  `X-RateLimit-Requests-Reset` in epoch milliseconds;
- PagerDuty: 429 with `ratelimit-reset` in seconds (its REST API sends no Retry-After).
"""

from __future__ import annotations

import math
import ssl
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme
from pydantic import SecretStr
from sqlalchemy import Engine

from adapters.base import OutboundAdapter
from adapters.github.outbound import GitHubOutbound
from adapters.jira.outbound import JiraOutbound
from adapters.linear.outbound import LinearOutbound
from adapters.pagerduty.outbound import PagerDutyOutbound
from router.db.tables import outbox
from router.settings import Settings
from tests.standin_github import GitHubServer
from tests.standin_http import HttpStandin, Recorded, Reply
from tests.standin_jira import JiraStandin
from tests.standin_linear import LinearServer
from tests.standin_pagerduty import PagerDutyServer

CTO, OWNER = "cto-account", "owner-account"
TIMEOUT = 0.5  # seconds: the adapters' timeout (PagerDuty's clients take whole seconds)
Limit = Callable[[float, float], Reply]  # (arrival time, seconds to wait) -> the answer


@dataclass(frozen=True)
class Item:
    """One item: the token requests about it carry (id or number), and its target."""

    token: str
    target: dict[str, Any]


@dataclass
class Vendor:
    """What the outage test needs of one vendor."""

    source: str
    name: str  # as the adapters' details say it: "could not reach {name}"
    standin: HttpStandin
    adapter: OutboundAdapter
    fine: list[Item]  # handed over once the outage ends
    refused: list[Item]  # the vendor refuses them (no permission, no such item): dead
    actions: tuple[dict[str, Any], dict[str, Any]]  # queued for each item, in order
    limit: Limit
    timeout: float  # the adapter's: a hang holds an answer half a second past it
    writes: list[str]  # what each fine item's writes carried out look like, sorted
    state: Callable[[Item], tuple[tuple[str | None, ...], int]]  # assignees, comments
    label: Callable[[Recorded, Item], str] = field(
        default=lambda r, item: f"{r.method} {r.path.split(item.token, 1)[1]}")

    def about(self, request: Recorded) -> Item | None:
        """Return the item a request is about."""
        return next((i for i in self.fine + self.refused if request.mentions(i.token)), None)


class Outage:
    """Every request answered with trouble, in turn: a rate limit asking for a second,
    500, 503, and a hang past the client's timeout (applied first, as a slow vendor may);
    the first request about the `patient` item is rate-limited for two hours. Remembers
    each answer with the wait it asked for."""

    def __init__(self, patient: str, limit: Limit, hang: float) -> None:
        self.patient, self.limit, self.hang = patient, limit, hang
        self.turn = 0
        self.answered: list[tuple[Recorded, Reply | float, float | None]] = []

    def __call__(self, request: Recorded) -> Reply | float:
        trouble: Reply | float
        wait: float | None = None
        if request.mentions(self.patient) and not any(
                r.mentions(self.patient) for r, _, _ in self.answered):
            wait, trouble = 7200.0, self.limit(request.at, 7200.0)
        else:
            self.turn += 1
            kind = self.turn % 4
            wait = 1.0 if kind == 0 else None
            trouble = [self.limit(request.at, 1.0), Reply(500, {"message": "Internal error"}),
                       Reply(503, None), self.hang][kind]
        self.answered.append((request, trouble, wait))
        return trouble


def queue_actions(engine: Engine, vendor: Vendor) -> None:
    """Queue the vendor's two actions on each of its items, as a decision does."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for item in vendor.fine + vendor.refused:
            for action in vendor.actions:
                conn.execute(outbox.insert().values(
                    decision_id=1, type=action["type"], target=orjson.dumps(item.target).decode(),
                    item=f"{vendor.source}:{item.target['id']}",
                    action=orjson.dumps(action).decode(), status="pending", attempts=0,
                    next_at=now, created_at=now))


def handed_over(assign: str) -> tuple[dict[str, Any], dict[str, Any]]:
    text = "Yours per the scope note."
    return ({"type": assign, "account": OWNER, "remove": [CTO]},
            {"type": "note" if assign == "reassign_incident" else "comment", "text": text})


# -- the four vendors -----------------------------------------------------------------------

VendorFactory = Callable[[Callable[[], float], Path, pytest.MonkeyPatch],
                         AbstractContextManager[Vendor]]


@contextmanager
def jira(clock: Callable[[], float], tmp: Path, env: pytest.MonkeyPatch) -> Iterator[Vendor]:
    def limit(at: float, seconds: float) -> Reply:
        return Reply(429, {"errorMessages": ["Rate limit exceeded."]},
                     headers={"Retry-After": f"{seconds:.0f}"})

    def item(issue_id: str) -> Item:
        return Item(issue_id, {"source": "jira", "id": issue_id, "key": f"OPS-{issue_id}",
                               "kind": "ticket", "project": "OPS", "url": None})

    with JiraStandin(email="b@x.io", token="jira-api-token") as standin:
        fine = [item(str(30000 + n)) for n in range(6)]
        for i in [*fine, item("40403")]:
            standin.add_issue(f"OPS-{i.token}", i.token, assignee=CTO)
        standin.deny("40403", Reply(403, {"errorMessages": [
            "You do not have the permission to see the specified issue."]}))
        adapter = JiraOutbound(Settings(jira_url=standin.url, jira_email="b@x.io",
                                        jira_api_token="jira-api-token"), TIMEOUT, clock)
        issues = standin.issues
        yield Vendor("jira", "Jira", standin, adapter, fine, [item("40403"), item("40404")],
                     handed_over("assign"), limit, TIMEOUT, ["POST /comment", "PUT /assignee"],
                     lambda i: ((issues[i.token].assignee,), len(issues[i.token].comments)))
        adapter.close()


@contextmanager
def github(clock: Callable[[], float], tmp: Path, env: pytest.MonkeyPatch) -> Iterator[Vendor]:
    repo = "acme/shop"

    def limit(at: float, seconds: float) -> Reply:
        if seconds <= 60:  # a secondary rate limit names its wait
            return Reply(429, {"message": "You have exceeded a secondary rate limit."},
                         headers={"Retry-After": f"{seconds:.0f}"})
        return Reply(403, {"message": "API rate limit exceeded for installation ID 1."},
                     headers={"x-ratelimit-limit": "5000", "x-ratelimit-remaining": "0",
                              "x-ratelimit-reset": str(math.ceil(at + seconds))})

    def item(number: int) -> Item:
        return Item(f"/issues/{number}", {"source": "github", "id": f"1296269#{number}",
                                          "key": f"{repo}#{number}", "kind": "ticket",
                                          "project": repo, "url": None})

    with GitHubServer(token="gh-token") as standin:
        fine = [item(7101 + n) for n in range(6)]
        for number in [*range(7101, 7107), 7403]:
            standin.model.add(repo, number, [CTO])
        standin.deny("/issues/7403", Reply(403, {"message": "Resource not accessible by "
                                                            "integration"}))
        adapter = GitHubOutbound(Settings(github_api_url=standin.url,
                                          github_token=SecretStr("gh-token")), TIMEOUT, clock)
        issues = standin.model.issues

        def state(i: Item) -> tuple[tuple[str | None, ...], int]:
            issue = issues[(repo, int(i.token.rsplit("/", 1)[1]))]
            return tuple(issue.assignees), len(issue.comments)

        yield Vendor("github", "GitHub", standin, adapter, fine, [item(7403), item(7404)],
                     handed_over("assign"), limit, TIMEOUT,
                     ["DELETE /assignees", "POST /assignees", "POST /comments"], state)
        adapter.close()


@contextmanager
def linear(clock: Callable[[], float], tmp: Path, env: pytest.MonkeyPatch) -> Iterator[Vendor]:
    def limit(at: float, seconds: float) -> Reply:
        reset = math.ceil((at + seconds) * 1000)  # epoch milliseconds
        return Reply(400 if seconds <= 60 else 429, {"errors": [{
            "message": "Rate limit exceeded", "extensions": {"code": "RATELIMITED"}}]},
            headers={"X-RateLimit-Requests-Remaining": "0",
                     "X-RateLimit-Requests-Reset": str(reset)})

    with LinearServer(key="lin_api_key") as standin:
        model = standin.model

        def item(issue_id: str) -> Item:
            issue = model.issues.get(issue_id, {"identifier": "ENG-404"})
            return Item(issue_id, {"source": "linear", "id": issue_id,
                                   "key": issue["identifier"], "kind": "ticket",
                                   "project": "ENG", "url": None})

        fine = [item(model.add_issue("ENG", CTO)) for _ in range(6)]
        forbidden = item(model.add_issue("ENG", CTO))
        standin.deny(forbidden.token, Reply(400, {"data": None, "errors": [{
            "message": "Forbidden", "extensions": {"code": "FORBIDDEN"}}]}))
        adapter = LinearOutbound(f"{standin.url}{standin.PATH}", SecretStr("lin_api_key"),
                                 timeout=TIMEOUT, clock=clock)

        def state(i: Item) -> tuple[tuple[str | None, ...], int]:
            issue = model.issues[i.token]
            return (issue["assigneeId"],), len(issue["comments"])

        yield Vendor("linear", "Linear", standin, adapter, fine,
                     [forbidden, item(str(uuid.uuid4()))], handed_over("assign"), limit,
                     TIMEOUT, ["CreateComment", "SetAssignee"], state,
                     lambda r, _: str(r.json["query"]).split("(")[0].split()[-1])


@contextmanager
def pagerduty(clock: Callable[[], float], tmp: Path,
              env: pytest.MonkeyPatch) -> Iterator[Vendor]:
    def limit(at: float, seconds: float) -> Reply:
        return Reply(429, {"error": {"message": "Rate Limit Exceeded"}},
                     headers={"ratelimit-limit": "960", "ratelimit-remaining": "0",
                              "ratelimit-reset": f"{seconds:.0f}"})

    def item(incident: str) -> Item:
        return Item(incident, {"source": "pagerduty", "id": incident, "key": incident,
                               "kind": "incident", "project": "PCHECKOUT", "url": None})

    ca = trustme.CA()  # PagerDuty's clients speak only https: a throwaway CA, trusted
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)  # as users do (SSL_CERT_FILE)
    ca.issue_cert("127.0.0.1").configure_cert(tls)
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    env.setenv("SSL_CERT_FILE", str(tmp / "ca.pem"))
    with PagerDutyServer(token="pd-token", tls=tls) as standin:
        fine = [item(f"PQ{7101 + n}") for n in range(6)]
        for i in [*fine, item("PQ7403")]:
            standin.add_incident(i.token, [CTO])
        standin.deny("PQ7403", Reply(403, {"error": {"message": "Access Denied"}}))
        adapter = PagerDutyOutbound(Settings(
            pagerduty_api_url=standin.url, pagerduty_api_token=SecretStr("pd-token"),
            pagerduty_from="firstline@example.com"), timeout=1)
        incidents = standin.incidents
        yield Vendor("pagerduty", "PagerDuty", standin, adapter, fine,
                     [item("PQ7403"), item("PQ7404")], handed_over("reassign_incident"),
                     limit, 1.0, ["POST /notes", "PUT "],
                     lambda i: (tuple(incidents[i.token].assignees),
                                len(incidents[i.token].notes)))


VENDORS: dict[str, VendorFactory] = {
    "jira": jira, "github": github, "linear": linear, "pagerduty": pagerduty}

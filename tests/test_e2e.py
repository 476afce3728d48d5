"""End to end: signed real deliveries into the running app, actions out to stand-ins.

GitHub is a stateful stand-in on pytest-httpx, Jira a local HTTP server for the
requests-based `jira` client, PagerDuty Events a transport-level stand-in for the
`pagerduty` client. The adapters are the real ones; only the far end is replaced.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, select

from adapters import outbound_adapters, pagerduty
from router.db.tables import charges, outbox
from router.service import build_service
from router.settings import Settings
from tests.standin_github import GitHubStandIn
from tests.standin_jira import JiraStandin
from tests.standin_pagerduty import PagerDutyStandIn
from tests.support import EXAMPLE_SCOPE, FIXTURES, eventually, github_assigned_to_cto
from tests.vendors import SECRETS, signed_headers

GITHUB_API = "https://api.github.test"
EVENTS = "https://events.pagerduty.test"
ENG_JIRA = "5c5f880629be9642ba529340"


def scope_file(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / f"scope-{mode}.yaml"
    path.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", f"mode: {mode}"))
    return path


@pytest.fixture
def jira_standin() -> Iterator[JiraStandin]:
    with JiraStandin() as standin:
        yield standin


@pytest.fixture
def pd() -> PagerDutyStandIn:
    return PagerDutyStandIn()


@pytest.fixture
def gh(httpx_mock: HTTPXMock) -> GitHubStandIn:
    return GitHubStandIn(GITHUB_API).install(httpx_mock)


def service(db_url: str, rules: Path, jira_standin: JiraStandin,
            pd: PagerDutyStandIn, **overrides: Any) -> TestClient:
    """Return the app with its worker and performer, the vendors' far ends replaced;
    `overrides` change settings (None unsets one)."""
    settings = Settings(**{
        "rules": rules, "database_url": db_url, "api_token": "x",
        "jira_webhook_secret": SECRETS["jira"], "github_webhook_secret": SECRETS["github"],
        "pagerduty_webhook_secret": SECRETS["pagerduty"],
        "jira_url": jira_standin.url, "jira_email": "bot@example.com",
        "jira_api_token": "jira-token", "github_api_url": GITHUB_API, "github_token": "gh-token",
        "pagerduty_events_url": EVENTS, "pagerduty_routing_key": "R0UT1NGKEY",
        "pagerduty_api_url": "https://api.pagerduty.test", "pagerduty_api_token": "pd-token",
        "pagerduty_from": "bot@example.com", **overrides})
    adapters = {**outbound_adapters(settings),
                "pagerduty": pagerduty.outbound(settings, transport=pd.transport)}
    return TestClient(build_service(settings, adapters=adapters))


def post(client: TestClient, source: str, event: str, payload: Any, delivery: str) -> None:
    body = orjson.dumps(payload)
    answer = client.post(f"/webhooks/{source}", content=body,
                         headers=signed_headers(source, body, event, delivery))
    assert answer.status_code == 202, answer.text


def settle(engine: Engine, actions: int, timeout: float = 30) -> list[tuple[str, str]]:
    """Wait until `actions` outbox rows exist and none is pending; return (type, status)."""
    def rows() -> tuple[list[tuple[str, str]]] | None:  # a tuple: no rows is an answer too
        with engine.connect() as conn:
            found = [(r.type, r.status) for r in conn.execute(
                select(outbox.c.type, outbox.c.status).order_by(outbox.c.id))]
        return (found,) if len(found) >= actions and all(s != "pending" for _, s in found) \
            else None
    return eventually(rows, f"{actions} actions, none pending", timeout)[0]


def test_ticket_assigned_directly_to_the_cto_is_handed_to_its_owner(
        db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn, gh: GitHubStandIn, httpx_mock: HTTPXMock) -> None:
    issue = gh.add("Codertocat/Hello-World", 1, ["dreyes"])
    with service(db_url, scope_file(tmp_path, "enforce"), jira_standin, pd) as client:
        post(client, "github", "issues", github_assigned_to_cto(), "gh-1")
        assert settle(engine, 2) == [("assign", "done"), ("comment", "done")]
    assert issue.assignees == ["Codertocat"]
    assert len(issue.comments) == 1
    assert "Routine bug triage" in issue.comments[0]
    assert "<!-- firstline:action:2 -->" in issue.comments[0]
    calls = [(r.method, r.url.path) for r in httpx_mock.get_requests()]
    path = "/repos/Codertocat/Hello-World/issues/1"
    assert calls == [("GET", path), ("DELETE", f"{path}/assignees"),
                     ("POST", f"{path}/assignees"),
                     ("POST", f"{path}/comments")]  # a first try has no marker to look for
    delete, add = httpx_mock.get_requests()[1:3]
    assert orjson.loads(delete.content) == {"assignees": ["dreyes"]}
    assert orjson.loads(add.content) == {"assignees": ["Codertocat"]}
    for request in httpx_mock.get_requests():
        assert request.headers["authorization"] == "Bearer gh-token"
        assert request.headers["x-github-api-version"] == "2022-11-28"
    assert pd.requests == [] and jira_standin.requests == []


def test_incident_assigned_to_the_cto_is_handed_back_with_a_note(
        db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn) -> None:
    """PagerDuty has no comments: the hand-back's word to the owner is a note, with the
    marker a retry looks for."""
    payload = orjson.loads((FIXTURES / "pagerduty" / "incident.reassigned.json").read_bytes())
    payload["event"]["occurred_at"] = datetime.now(UTC).isoformat()  # restore-time not due
    incident = payload["event"]["data"]  # PJ0LVEB (eng-lead) gives it to the CTO
    incident["assignees"][0]["id"] = "PXRUEF2"
    path = f"/incidents/{incident['id']}"

    def assigned(user: str) -> dict[str, Any]:
        return {"incident": {"id": incident["id"], "type": "incident", "assignments": [
            {"assignee": {"id": user, "type": "user_reference"}}]}}
    pd.answer("GET", path, 200, assigned("PXRUEF2"))
    pd.answer("PUT", path, 200, assigned("PJ0LVEB"))
    pd.answer("POST", f"{path}/notes", 201, {"note": {"id": "N1"}})
    with service(db_url, scope_file(tmp_path, "enforce"), jira_standin, pd) as client:
        post(client, "pagerduty", "incident.reassigned", payload, "pd-1")
        assert settle(engine, 2) == [("reassign_incident", "done"), ("note", "done")]
    assert [(r.method, r.path) for r in pd.requests] == [
        ("GET", path), ("PUT", path), ("POST", f"{path}/notes")]
    note = pd.requests[2]
    assert note.headers["From"] == "bot@example.com"
    assert "first response is Sam Okafor (eng-lead)" in note.body["note"]["content"]
    assert note.body["note"]["content"].endswith("[firstline:action:2]")


def test_an_alert_storm_of_twenty_items_in_one_group_pages_once(
        db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn) -> None:
    pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "message": "Event processed",
                                           "dedup_key": "firstline/revenue-path/TES"})
    base = orjson.loads((FIXTURES / "jira" / "issue_created.json").read_bytes())
    now = datetime.now(UTC)
    with service(db_url, scope_file(tmp_path, "enforce"), jira_standin, pd) as client:
        for n in range(20):
            payload = orjson.loads(orjson.dumps(base))
            issue = payload["issue"]
            issue["id"], issue["key"] = str(70000 + n), f"TES-{700 + n}"
            issue["fields"]["labels"] = ["checkout"]
            issue["fields"]["created"] = issue["fields"]["updated"] = now.isoformat()
            payload["timestamp"] = int(now.timestamp() * 1000) + n
            jira_standin.add_issue(issue["key"], issue["id"])
            post(client, "jira", "jira:issue_created", payload, f"storm-{n}")
        rows = settle(engine, 1 + 2 * 20)
    assert rows.count(("page", "done")) == 1
    assert [r.path for r in pd.requests] == ["/v2/enqueue"]
    event = pd.requests[0].body
    assert (event["event_action"], event["dedup_key"], event["routing_key"]) == (
        "trigger", "firstline/revenue-path/TES", "R0UT1NGKEY")
    assert event["payload"]["severity"] == "error" and event["payload"]["source"] == "firstline"
    puts = [r for r in jira_standin.writes() if r.path.endswith("/assignee")]
    assert len(puts) == 20 and all(r.json == {"accountId": ENG_JIRA} for r in puts)
    comments = [r for r in jira_standin.writes() if r.path.endswith("/comment")]
    assert len(comments) == 20
    assert all(r.json["properties"][0]["key"] == "firstline" for r in comments)


def test_no_request_leaves_for_work_that_bypasses_the_cto(
        db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn, httpx_mock: HTTPXMock) -> None:
    keep = orjson.loads((FIXTURES / "github" / "issues.opened.json").read_bytes())
    own = github_assigned_to_cto(sender="firstline-bot")
    skipped = github_assigned_to_cto()
    skipped["issue"]["labels"].append({"name": "firstline-skip"})
    with service(db_url, scope_file(tmp_path, "enforce"), jira_standin, pd) as client:
        post(client, "github", "issues", keep, "keep")
        post(client, "github", "issues", own, "own")
        post(client, "github", "issues", skipped, "skipped")
        decided = _decisions(client, 3)
    assert sorted(d["outcome"] for d in decided) == ["ignore", "ignore", "keep"]
    assert settle(engine, 0) == []
    assert httpx_mock.get_requests() == [] and pd.requests == [] and jira_standin.requests == []


def test_shadow_mode_performs_nothing_and_records_what_it_would_do(
        db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn, httpx_mock: HTTPXMock) -> None:
    with service(db_url, scope_file(tmp_path, "shadow"), jira_standin, pd) as client:
        post(client, "github", "issues", github_assigned_to_cto(), "gh-shadow")
        assert settle(engine, 2) == [("assign", "shadow"), ("comment", "shadow")]
        time.sleep(0.3)  # the performer runs meanwhile: it must leave shadow rows alone
    assert httpx_mock.get_requests() == [] and pd.requests == [] and jira_standin.requests == []
    with engine.connect() as conn:
        actions = [orjson.loads(a) for (a,) in conn.execute(select(outbox.c.action))]
    assert actions[0]["account"] == "Codertocat" and actions[0]["remove"] == ["dreyes"]


def _decisions(client: TestClient, want: int) -> list[dict[str, Any]]:
    def items() -> list[dict[str, Any]] | None:
        page = client.get("/api/v1/decisions", headers={"Authorization": "Bearer x"})
        found = page.json().get("items", []) if page.status_code == 200 else []
        return list(found) if len(found) >= want else None
    return eventually(items, f"{want} decisions")


def test_escalation_lifecycle_acknowledged_resolved_and_the_page_resolved(
        db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn) -> None:
    """A legal ticket pages; PagerDuty's webhooks about that page update the escalation;
    when the ticket is resolved, firstline resolves its page."""
    key = "firstline/legal/jira:10040"
    for _ in ("trigger", "resolve"):
        pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": key})
    jira_standin.add_issue("TES-41", "10040")
    ticket = orjson.loads((FIXTURES / "jira" / "issue_created.json").read_bytes())
    ticket["issue"]["fields"]["labels"] = ["legal"]
    now = datetime.now(UTC)  # a fresh ticket: its no-owner clock has not run out
    ticket["issue"]["fields"]["created"] = ticket["issue"]["fields"]["updated"] = now.isoformat()
    ticket["timestamp"] = int(now.timestamp() * 1000)
    with service(db_url, scope_file(tmp_path, "enforce"), jira_standin, pd) as client:
        post(client, "jira", "jira:issue_created", ticket, "t-1")
        settle(engine, 3)  # page, comment, assign
        page_event(client, "incident.acknowledged", key)
        _escalation(client, lambda e: e["acknowledged_at"] is not None)
        resolved = orjson.loads(orjson.dumps(ticket))
        resolved["issue"]["fields"]["status"]["statusCategory"]["key"] = "done"
        resolved["timestamp"] += 60_000
        post(client, "jira", "jira:issue_updated", resolved, "t-2")
        settle(engine, 4)  # + resolve_page
        acked = _pd_time("incident.acknowledged")
        resolved_at = acked + timedelta(minutes=30)  # the fixtures come from two recordings
        page_event(client, "incident.resolved", key, at=resolved_at)  # PagerDuty confirms
        escalation = _escalation(client, lambda e: e["resolved_at"] == resolved_at.isoformat())
        assert escalation["dedup_key"] == key and escalation["status"] == "resolved"
        assert datetime.fromisoformat(escalation["acknowledged_at"]) == acked
    assert [(r.body["event_action"], r.body["dedup_key"]) for r in pd.requests] == [
        ("trigger", key), ("resolve", key)]
    with engine.connect() as conn:
        hours = conn.execute(select(charges.c.hours).where(charges.c.source == "page")).all()
    assert hours == [(0.5,)]  # the CTO's time on the page: acknowledged to resolved


def _pd_time(name: str) -> datetime:
    payload = orjson.loads((FIXTURES / "pagerduty" / f"{name}.json").read_bytes())
    return datetime.fromisoformat(payload["event"]["occurred_at"])


def page_event(client: TestClient, name: str, key: str, at: datetime | None = None) -> None:
    """Post PagerDuty's real webhook for `name`, about firstline's page `key`."""
    payload = orjson.loads((FIXTURES / "pagerduty" / f"{name}.json").read_bytes())
    payload["event"]["data"]["incident_key"] = key
    if at is not None:
        payload["event"]["occurred_at"] = at.isoformat()
    post(client, "pagerduty", name, payload, f"pd-{name}")


def _escalation(client: TestClient, done: Any) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        items = client.get("/api/v1/escalations", headers={"Authorization": "Bearer x"}).json()
        return next((dict(e) for e in items["items"] if done(e)), None)
    return eventually(found, "the escalation")

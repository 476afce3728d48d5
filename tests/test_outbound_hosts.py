"""A payload cannot steer firstline's calls to another host (SPEC §7: outbound calls go
only to the configured base URLs).

Audit of adapters/*/outbound.py and of the Jira and Linear client.py: requests are built
from the configured base URL and the item's id or key only (Jira `issue/{quoted id}`,
GitHub `/repos/{owner}/{repo}/issues/{n}` from the key's strict pattern, PagerDuty
`/incidents/{quoted id}`, Linear one GraphQL endpoint with variables); payload URLs
(`self`, `url`, `html_url`, ...) end up only in links for people (the item's `url`, the
page's links, the dashboard's links to the item).
Here every URL in real deliveries is pointed at a second local server, which must
receive nothing, neither from the first attempts nor from the dashboard's retries.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from fastapi.testclient import TestClient
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, select

from adapters import outbound_adapters, pagerduty
from router.db.tables import outbox
from router.service import build_service
from router.settings import Settings
from tests.standin_github import GitHubStandIn
from tests.standin_jira import JiraStandin
from tests.standin_pagerduty import PagerDutyStandIn
from tests.support import EXAMPLE_SCOPE, FIXTURES, eventually, github_assigned_to_cto
from tests.test_pages import csrf_of, login
from tests.vendors import SECRETS, signed_headers

GITHUB_API = "https://api.github.test"
OPERATOR = "outbound-hosts-operator"
LINEAR_API = "https://api.linear.test/graphql"
_URL = re.compile(r"https?://[^/\"\s]+")


def pointed_at(payload: Any, elsewhere: str) -> Any:
    """Return the payload with the host of every URL in it replaced by `elsewhere`."""
    return json.loads(_URL.sub(elsewhere, json.dumps(payload)))


def test_urls_in_payloads_do_not_steer_calls_elsewhere(
        db_url: str, engine: Engine, tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    rules = tmp_path / "scope.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", "mode: enforce"))
    with JiraStandin() as elsewhere, JiraStandin(email="bot@example.com", token="t") as jira:
        settings = Settings(
            rules=rules, database_url=db_url, jira_url=jira.url, jira_email="bot@example.com",
            jira_api_token="t", github_api_url=GITHUB_API, github_token="g",
            linear_api_url=LINEAR_API, linear_api_key="l", pagerduty_from="bot@example.com",
            pagerduty_api_url="https://api.pagerduty.test", pagerduty_api_token="p",
            pagerduty_events_url="https://events.pagerduty.test", pagerduty_routing_key="r",
            api_token=OPERATOR,
            **{f"{s}_webhook_secret": secret for s, secret in SECRETS.items()})
        gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
        gh.add("Codertocat/Hello-World", 1, ["dreyes"])
        httpx_mock.add_response(url=LINEAR_API, json={"errors": [{"message": "stand-in"}]},
                                is_reusable=True)
        pd = PagerDutyStandIn()
        for _ in range(5):  # whatever pages and incident changes the deliveries make
            pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": "k"})
            for method, path in (("GET", ""), ("PUT", ""), ("GET", "/notes"),
                                 ("POST", "/notes")):
                pd.answer(method, f"/incidents/PFQZPSY{path}", 404, {"error": {"code": 2100}})
        adapters = {**outbound_adapters(settings),
                    "pagerduty": pagerduty.outbound(settings, transport=pd.transport)}
        with TestClient(build_service(settings, adapters=adapters)) as client:
            for source, event, payload in _payloads(jira):
                body = json.dumps(pointed_at(payload, elsewhere.url)).encode()
                answer = client.post(f"/webhooks/{source}", content=body,
                                     headers=signed_headers(source, body, event))
                assert answer.status_code in (200, 202), answer.text
            eventually(lambda: _settled(engine), "every action done or dead", timeout=60)
            retried = _retry_dead_from_the_dashboard(client, engine)
            eventually(lambda: _settled(engine), "the retried actions done or dead", timeout=60)
        with engine.connect() as conn:  # the other host did reach the actions' targets...
            targets = " ".join(conn.execute(select(outbox.c.target)).scalars())
        assert elsewhere.url in targets
        assert elsewhere.requests == []  # ...and no call went there, retried ones neither
        assert retried
        assert jira.requests and gh.issues[("Codertocat/Hello-World", 1)].comments
    hosts = {r.url.host for r in httpx_mock.get_requests()}
    assert hosts <= {"api.github.test", "api.linear.test"}
    assert all(r.path.startswith("/v2/") or r.path.startswith("/incidents/")
               for r in pd.requests)


def _retry_dead_from_the_dashboard(client: TestClient, engine: Engine) -> list[int]:
    """Put every dead action back through the dashboard's Retry button (an operator)."""
    assert login(client, OPERATOR).status_code in (200, 303)
    csrf = csrf_of(client.get("/").text)
    with engine.connect() as conn:
        dead = list(conn.execute(select(outbox.c.id).where(outbox.c.status == "dead")).scalars())
    for action_id in dead:
        answer = client.post(f"/actions/{action_id}/retry", data={"csrf": csrf},
                             follow_redirects=False)
        assert answer.status_code == 303, answer.text
    return dead


def _payloads(jira: JiraStandin) -> list[tuple[str, str, Any]]:
    issue = json.loads((FIXTURES / "jira" / "issue_created.json").read_bytes())
    issue["issue"]["fields"]["labels"] = ["checkout"]  # escalates: page, comment, assign
    jira.add_issue(issue["issue"]["key"], issue["issue"]["id"])
    linear = json.loads((FIXTURES / "linear" / "Issue.create.json").read_bytes())
    linear["webhookTimestamp"] = int(time.time() * 1000)
    incident = json.loads((FIXTURES / "pagerduty" / "incident.triggered.json").read_bytes())
    return [("github", "issues", github_assigned_to_cto()),
            ("jira", "jira:issue_created", issue), ("linear", "Issue", linear),
            ("pagerduty", "incident.triggered", incident)]


def _settled(engine: Engine) -> bool:
    with engine.connect() as conn:
        statuses = list(conn.execute(select(outbox.c.status)).scalars())
    return bool(statuses) and "pending" not in statuses


def test_the_replaced_payloads_still_name_the_other_host() -> None:
    """Guard the test above: its payloads really do point elsewhere."""
    payload = pointed_at(github_assigned_to_cto(), "http://127.0.0.1:9")
    assert payload["issue"]["html_url"].startswith("http://127.0.0.1:9/")
    assert payload["repository"]["url"].startswith("http://127.0.0.1:9/")
    assert httpx.URL(payload["issue"]["comments_url"]).host == "127.0.0.1"

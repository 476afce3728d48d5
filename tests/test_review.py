"""The review checklist of a grouped escalation, end to end: real deliveries (the example
checkout tickets and variants of the real fixtures) through real HTTP into the app, the
worker deciding, the performer acting on stand-ins; then `GET .../review`, `firstline
review` and the review ticket filed in GitHub when the escalation resolved.

Two Jira tickets share the revenue-path page; a GitHub pull request names OPS-1 in its
title and branch, and a PagerDuty incident links OPS-2's Jira URL: both join the review
as linked items. PagerDuty acknowledges and resolves the page 40 minutes apart.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, delete, select

from router.db.tables import decisions, inbox, outbox
from tests.standin_github import GitHubStandIn
from tests.standin_jira import JiraStandin
from tests.standin_pagerduty import PagerDutyStandIn
from tests.support import EXAMPLE_SCOPE, FIXTURES, ROOT, eventually
from tests.test_e2e import GITHUB_API, post, service, settle

EXAMPLES = ROOT / "examples" / "deliveries"
GROUP_KEY = "firstline/revenue-path/OPS"
AUTH = {"Authorization": "Bearer x"}
JSON = {**AUTH, "Accept": "application/json"}
SUPPORT = "61e0a1b2c3d4e5f601234567"  # support-lead's Jira account
ENG = "5c5f880629be9642ba529340"  # eng-lead's
REVIEWS = "reviews: {source: github, project: acme/reviews, labels: [postmortem]}\n"
JIRA_SITE = "https://some-instance-test.atlassian.net"


@dataclass
class Incident:
    """What the scenario leaves behind to look at."""

    client: TestClient
    engine: Engine
    gh: GitHubStandIn
    rules: Path
    db_url: str
    t0: datetime  # OPS-1 created
    now: datetime  # when the deliveries were posted


def jira(name: str, at: datetime, *, fixture: str | None = None,
         **fields: Any) -> dict[str, Any]:
    """Return an example ticket's delivery at `at`: as created, or wrapped in a real update
    fixture (its changelog and author) with some fields changed."""
    payload = orjson.loads((EXAMPLES / "jira" / f"{name}.json").read_bytes())
    if fixture is not None:
        update = orjson.loads((FIXTURES / "jira" / f"{fixture}.json").read_bytes())
        update["issue"] = payload["issue"]
        payload = update
    payload["timestamp"] = int(at.timestamp() * 1000)
    issue_fields = payload["issue"]["fields"]
    issue_fields["updated"] = at.isoformat()
    issue_fields.update(fields)
    return payload


def by_support(payload: dict[str, Any]) -> dict[str, Any]:
    payload["user"] = {"accountId": SUPPORT, "displayName": "Ana Lima"}
    return payload


def resolved(name: str, at: datetime, **fields: Any) -> dict[str, Any]:
    payload = jira(name, at, fixture="issue_updated.resolved", **fields)
    done = orjson.loads((FIXTURES / "jira" / "issue_updated.resolved.json").read_bytes())
    payload["issue"]["fields"]["status"] = done["issue"]["fields"]["status"]
    return payload


def pull_request(at: datetime) -> dict[str, Any]:
    payload = orjson.loads((FIXTURES / "github" / "pull_request.opened.json").read_bytes())
    pr = payload["pull_request"]
    pr["title"] = "Fix checkout rounding (OPS-1)"
    pr["head"]["ref"] = "ops-1-fix-rounding"
    pr["created_at"] = pr["updated_at"] = at.isoformat()
    return payload


def incident(at: datetime) -> dict[str, Any]:
    payload = orjson.loads((FIXTURES / "pagerduty" / "incident.resolved.json").read_bytes())
    payload["event"]["occurred_at"] = at.isoformat()
    data = payload["event"]["data"]  # another incident than the page's (same recording)
    data["id"], data["html_url"] = "PL1NK0K", "https://pig208.pagerduty.com/incidents/PL1NK0K"
    data["title"] = f"Checkout errors, see {JIRA_SITE}/browse/OPS-2"
    return payload


def page(name: str, at: datetime) -> dict[str, Any]:
    """PagerDuty's real webhook `name` about firstline's page of the group."""
    payload = orjson.loads((FIXTURES / "pagerduty" / f"{name}.json").read_bytes())
    payload["event"]["data"]["incident_key"] = GROUP_KEY
    payload["event"]["occurred_at"] = at.isoformat()
    return payload


def escalation(client: TestClient, check: Any, what: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        answer = client.get("/api/v1/escalations/1", headers=AUTH)
        return answer.json() if answer.status_code == 200 and check(answer.json()) else None
    return eventually(found, what)


@pytest.fixture
def incident_run(db_url: str, engine: Engine, tmp_path: Path,
                 httpx_mock: HTTPXMock) -> Iterator[Incident]:
    rules = tmp_path / "scope.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", "mode: enforce", 1)
                     + REVIEWS)
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    pd = PagerDutyStandIn()
    for action in ("trigger", "resolve"):
        pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": GROUP_KEY,
                                               "message": action})
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = now - timedelta(hours=3)
    with JiraStandin() as jira_standin:
        jira_standin.add_issue("OPS-1", "20001")
        jira_standin.add_issue("OPS-2", "20002")
        with service(db_url, rules, jira_standin, pd) as client:
            for source, event, payload, delivery in [
                ("jira", "", jira("OPS-1.checkout", t0, created=t0.isoformat()), "ops-1"),
                ("jira", "", jira("OPS-2.checkout", t0 + timedelta(minutes=5),
                                  created=(t0 + timedelta(minutes=5)).isoformat()), "ops-2"),
                ("jira", "", jira("OPS-1.checkout", t0 + timedelta(minutes=8),
                                  fixture="issue_updated.priority_raised",
                                  priority={"name": "Highest", "id": "1"}), "ops-1-up"),
                ("jira", "", by_support(jira("OPS-2.checkout", t0 + timedelta(minutes=10),
                                             fixture="issue_updated.issue_assigned",
                                             assignee={"accountId": ENG})), "ops-2-as"),
                ("github", "pull_request", pull_request(t0 + timedelta(minutes=20)), "pr"),
                ("pagerduty", "", incident(t0 + timedelta(minutes=25)), "pd-linked"),
            ]:
                post(client, source, event, payload, delivery)
            escalation(client, lambda e: e["page"]["state"] == "sent", "the page sent")
            post(client, "pagerduty", "", page("incident.acknowledged",
                                               now + timedelta(minutes=4)), "ack")
            post(client, "jira", "", resolved("OPS-1.checkout", now + timedelta(minutes=30),
                                              priority={"name": "Highest", "id": "1"}),
                 "ops-1-done")
            post(client, "jira", "", resolved("OPS-2.checkout", now + timedelta(minutes=40),
                                              assignee={"accountId": ENG}),
                 "ops-2-done")
            escalation(client, lambda e: e["review"] and e["review"]["state"] == "filed",
                       "the review ticket filed")
            post(client, "pagerduty", "", page("incident.resolved",
                                               now + timedelta(minutes=44)), "pd-resolved")
            escalation(client, lambda e: e["resolved_at"] == (now + timedelta(minutes=44))
                       .isoformat(), "PagerDuty's resolved time")
            settle(engine, 7)
            yield Incident(client, engine, gh, rules, db_url, t0, now)


def test_the_review_lists_items_links_triggers_and_times(incident_run: Incident) -> None:
    run = incident_run
    review = run.client.get("/api/v1/escalations/1/review", headers=JSON).json()
    assert review["id"] == 1 and review["status"] == "resolved"
    assert review["page"]["state"] == "sent"
    assert [(i["source"], i["key"], i["linked"], i["via"]) for i in review["items"]] == [
        ("jira", "OPS-1", False, None), ("jira", "OPS-2", False, None),
        ("github", "Codertocat/Hello-World#2", True, "names OPS-1"),
        ("pagerduty", "PL1NK0K", True, "names OPS-2")]
    assert review["items"][0]["url"] == f"{JIRA_SITE}/browse/OPS-1"
    assert review["items"][2]["url"] == "https://github.com/Codertocat/Hello-World/pull/2"
    revenue, no_owner = review["triggers"]
    assert (revenue["id"], revenue["item"], revenue["because"]) == (
        "revenue-path", "OPS-1", ["label checkout", "severity sev2 at least sev2"])
    assert revenue["name"] == "Payments, signups or another revenue path stopped working"
    assert (no_owner["id"], no_owner["item"]) == ("no-owner", "OPS-1")
    assert no_owner["because"][:2] == ["severity sev2 at least sev2",
                                       "no owner named (unassigned)"]
    due = run.t0 + timedelta(minutes=15)
    assert no_owner["because"][2] == f"clock from {run.t0.isoformat()}, due {due.isoformat()}"
    assert review["follow_up_owner"] == "eng-lead"
    assert review["follow_up_why"] == "first-response owner on the scope line 'Everything else'"
    assert review["cto_minutes"] == 40.0
    assert 0 < review["minutes_to_acknowledge"] <= 4.0
    assert 0 < review["minutes_to_resolve"] <= 44.0
    assert review["questions"] == ["What broke?", "Why did the team miss it?",
                                   "What will stop it next time?"]
    assert review["prevention"] == ["A better alert", "A small code change",
                                    "A clearer runbook", "Removing a fragile vendor dependency"]
    assert review["missing"] == []
    assert review["review_ticket"] == {"state": "filed", "key": "acme/reviews#1",
                                       "url": "https://github.com/acme/reviews/issues/1"}


def test_the_timeline_merges_the_tools_in_time_order(incident_run: Incident) -> None:
    review = incident_run.client.get("/api/v1/escalations/1/review", headers=JSON).json()
    timeline = review["timeline"]
    assert [line["at"] for line in timeline] == sorted(line["at"] for line in timeline)
    told = [(ln["source"], ln["key"], ln["event"], ln["linked"]) for ln in timeline
            if ln["source"] != "firstline"]
    assert told == [
        ("jira", "OPS-1", "created: 'Unit test summary'; status open; priority High; sev2; "
                          "labels checkout; unassigned (by support-lead)", False),
        ("jira", "OPS-2", "created: 'Unit test summary'; status open; priority High; sev2; "
                          "labels bug, checkout; unassigned (by support-lead)", False),
        ("jira", "OPS-1", "priority High -> Highest; severity sev2 -> sev1 (by eng-lead)",
         False),
        ("jira", "OPS-2", "assigned to eng-lead (by support-lead)", False),
        ("github", "Codertocat/Hello-World#2", "opened: 'Fix checkout rounding (OPS-1)'; "
                   "status open; sev4; labels bug; assigned to eng-lead (by eng-lead)", True),
        ("pagerduty", "PL1NK0K", "resolved: 'Checkout errors, see "
                      f"{JIRA_SITE}/browse/OPS-2'; status resolved; sev2; unassigned "
                      "(by eng-lead)", True),
        ("pagerduty", GROUP_KEY, "the CTO's page was acknowledged", False),
        ("jira", "OPS-1", "status open -> resolved (by eng-lead)", False),
        ("jira", "OPS-2", "status open -> resolved (by eng-lead)", False),
    ]
    own = [(ln["key"], ln["event"]) for ln in timeline if ln["source"] == "firstline"]
    assert own[0] == ("OPS-1", "escalate: CTO trigger revenue-path (Payments, signups or "
                      "another revenue path stopped working), no-owner (Nobody named an owner "
                      "within 15 minutes) fired; pages the CTO.")
    done = [event for _, event in own if not event.startswith(("escalate", "keep"))]
    assert done[:3] == [
        f"paged the CTO ({GROUP_KEY})",
        'commented: "firstline: CTO trigger fired: Payments, signups or another revenue '
        "path stopped working, Nobody named an owner within 15 minutes. Sam Okafor (eng-lead)"
        ' keeps first response; the CTO joins."',
        "assigned eng-lead"]
    assert f"resolved the CTO's page ({GROUP_KEY})" in done
    assert "filed the review ticket" in done
    assert ("escalation 1", "escalation resolved: ready for review") in own


def test_the_review_ticket_is_filed_once_in_github(incident_run: Incident) -> None:
    [ticket] = incident_run.gh.opened("acme/reviews")
    assert ticket.title == ("Review: Payments, signups or another revenue path stopped working "
                            "(OPS-1, OPS-2) [escalation 1]")
    assert ticket.assignees == ["Codertocat"] and ticket.labels == ["postmortem"]
    assert ticket.body.startswith("# Review of escalation 1: Payments")
    assert "| jira | OPS-2 | assigned to eng-lead (by support-lead) |" in ticket.body
    assert "   - [ ] Removing a fragile vendor dependency" in ticket.body


def test_markdown_by_default_and_the_cli_prints_the_same_review(incident_run: Incident) -> None:
    run = incident_run
    answer = run.client.get("/api/v1/escalations/1/review", headers=AUTH)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith(
        "text/markdown")
    markdown = answer.text
    for line in ["# Review of escalation 1: Payments, signups or another revenue path "
                 "stopped working",
                 "- Follow-up owner: eng-lead (first-response owner on the scope line "
                 "'Everything else')",
                 "- CTO time (page acknowledged to resolved): 40 min",
                 "- Review ticket: acme/reviews#1 <https://github.com/acme/reviews/issues/1> "
                 "(filed)",
                 "- github **Codertocat/Hello-World#2** Fix checkout rounding (OPS-1) "
                 "<https://github.com/Codertocat/Hello-World/pull/2> (linked: names OPS-1)",
                 "1. What broke?", "3. What will stop it next time?",
                 "   - [ ] A better alert"]:
        assert line in markdown.splitlines(), line
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": run.db_url, "FIRSTLINE_RULES": str(run.rules)}
    shown = cli(env, "review", "1")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == markdown
    as_json = cli(env, "review", "1", "--format", "json")
    api = run.client.get("/api/v1/escalations/1/review", headers=JSON).json()
    assert orjson.loads(as_json.stdout) == api
    listed = cli(env, "escalations", "--state", "resolved")
    assert listed.returncode == 0 and listed.stdout.splitlines()[1].split()[:3] == [
        "1", "resolved", "sent"]
    assert "acme/reviews#1" in listed.stdout.splitlines()[1]


def test_an_unknown_escalation_is_one_line_and_a_404(incident_run: Incident) -> None:
    run = incident_run
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": run.db_url, "FIRSTLINE_RULES": str(run.rules)}
    missing = cli(env, "review", "99")
    assert (missing.returncode, missing.stdout, missing.stderr) == (
        1, "", "firstline: no escalation 99\n")
    answer = run.client.get("/api/v1/escalations/99/review", headers=AUTH)
    assert answer.status_code == 404 and answer.json() == {"detail": "no escalation 99"}


def test_a_review_whose_deliveries_were_pruned_says_what_is_missing(
        incident_run: Incident) -> None:
    run = incident_run
    with run.engine.begin() as conn:
        ids = conn.execute(select(decisions.c.inbox_id).where(
            decisions.c.item_key == "OPS-2", decisions.c.inbox_id.is_not(None))).scalars().all()
        conn.execute(delete(inbox).where(inbox.c.id.in_(ids)))
    review = run.client.get("/api/v1/escalations/1/review", headers=JSON).json()
    assert review["missing"] == [
        "3 of 3 deliveries about jira OPS-2 are no longer stored; their lines come from "
        "the decisions alone"]
    gone = [ln["event"] for ln in review["timeline"]
            if ln["key"] == "OPS-2" and ln["source"] == "jira"]
    assert gone == ["jira:issue_created (the delivery is no longer stored)",
                    "jira:issue_updated (the delivery is no longer stored)",
                    "jira:issue_updated (the delivery is no longer stored)"]
    markdown = run.client.get("/api/v1/escalations/1/review", headers=AUTH).text
    assert "## Missing from the records" in markdown


def test_shadow_mode_keeps_the_review_ticket_as_a_shadow_action(
        db_url: str, engine: Engine, tmp_path: Path, httpx_mock: HTTPXMock) -> None:
    rules = tmp_path / "scope.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text() + REVIEWS)
    pd = PagerDutyStandIn()
    now = datetime.now(UTC).replace(microsecond=0)
    with JiraStandin() as jira_standin, service(db_url, rules, jira_standin, pd) as client:
        post(client, "jira", "", jira("OPS-1.checkout", now - timedelta(hours=1)), "ops-1")
        post(client, "jira", "", resolved("OPS-1.checkout", now), "ops-1-done")
        shadow = escalation(client, lambda e: e["review"] is not None, "the shadow review")
        review = client.get("/api/v1/escalations/1/review", headers=JSON).json()
    assert (shadow["status"], shadow["page"]["state"]) == ("resolved", "shadow")
    assert shadow["review"] == {"state": "shadow", "action_id": shadow["review"]["action_id"],
                                "key": None, "url": None}
    assert review["review_ticket"] == {"state": "shadow", "key": None, "url": None}
    with engine.connect() as conn:
        [(status, action)] = conn.execute(select(outbox.c.status, outbox.c.action).where(
            outbox.c.type == "file_review")).all()
    filed = orjson.loads(action)
    assert status == "shadow" and filed["labels"] == ["postmortem"]
    assert filed["account"] == "Codertocat" and filed["to"] == "eng-lead"
    assert filed["text"].startswith("# Review of escalation 1:")
    assert "the CTO's page: never sent: shadow mode" in filed["text"]
    assert httpx_mock.get_requests() == [] and pd.requests == []
    assert jira_standin.requests == []


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "router.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)



def test_the_read_commands_refuse_bad_input_in_one_line(db_url: str, tmp_path: Path) -> None:
    nowhere = {**os.environ, "FIRSTLINE_RULES": str(EXAMPLE_SCOPE)}
    nowhere.pop("FIRSTLINE_DATABASE_URL", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for args in (["escalations"], ["review", "1"]):
        run = subprocess.run([sys.executable, "-m", "router.cli", *args], env=nowhere,
                             cwd=elsewhere, capture_output=True, text=True, timeout=120)
        assert run.returncode == 1 and run.stderr.count("\n") == 1
        assert run.stderr.startswith(f"firstline: no database at {elsewhere / 'firstline.db'}: "
                                     "set FIRSTLINE_DATABASE_URL")
    assert list(elsewhere.iterdir()) == []  # a read command creates no database
    env = {**nowhere, "FIRSTLINE_DATABASE_URL": db_url}
    bad_since = cli(env, "escalations", "--since", "yesterday")
    assert bad_since.returncode == 1 and bad_since.stderr.count("\n") == 1
    assert "--since 'yesterday' is not a date or time" in bad_since.stderr
    empty = cli(env, "escalations", "--json")
    assert (empty.returncode, empty.stdout) == (0, "")
    not_a_number = cli(env, "review", "one")
    assert not_a_number.returncode == 2 and "invalid int value: 'one'" in not_a_number.stderr

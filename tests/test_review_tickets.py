"""Review tickets filed through the outbox in Jira, Linear and GitHub: created once, assigned
to the follow-up owner, found again by their marker when an attempt took effect but its
answer was lost (a timeout, a 500, the performer killed), and named on the escalation."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, select, update

from adapters import github, jira, linear
from adapters.base import OutboundAdapter
from router.db.pages import queue_review
from router.db.tables import escalations, outbox
from router.settings import Settings
from tests.standin_github import GitHubStandIn
from tests.standin_jira import JiraStandin
from tests.standin_linear import LinearStandIn
from tests.support import ROOT, eventually
from tests.test_act import NOW, Clock, actor, row

GITHUB_API = "https://api.github.test"
LINEAR_API = "https://linear.test/graphql"
OWNER = {"github": "Codertocat", "jira": "5c5f880629be9642ba529340",
         "linear": "8f1e2d3c-0000-4000-8000-000000000001"}


def escalation_with_review(engine: Engine, source: str, project: str,
                           labels: tuple[str, ...] = ("postmortem",)) -> tuple[int, int]:
    """Store a resolved escalation and queue its review ticket as the worker does; return
    (escalation id, action id)."""
    with engine.begin() as conn:
        esc_id = int(conn.execute(escalations.insert().values(
            dedup_key="firstline/legal/jira:1", trigger_id="legal", status="resolved",
            decision_id=1, paged_at=NOW, resolved_at=NOW, page_state="sent")
            .returning(escalations.c.id)).scalar_one())
        target = {"source": source, "id": f"review-{esc_id}",
                  "key": f"review of escalation {esc_id}", "kind": "Task", "project": project,
                  "url": None}
        action = {"type": "file_review", "to": "eng-lead", "account": OWNER[source],
                  "title": "Review: legal trouble (OPS-1) [escalation 1]",
                  "text": "# Review of escalation 1\n", "labels": list(labels)}
        action_id = queue_review(conn, esc_id, dict(
            decision_id=1, type="file_review", target=orjson.dumps(target).decode(),
            item=f"{source}:review-{esc_id}", action=orjson.dumps(action).decode(),
            status="pending", attempts=0, next_at=NOW, created_at=NOW))
    return esc_id, action_id


def ticket(engine: Engine, esc_id: int) -> tuple[str | None, str | None]:
    with engine.connect() as conn:
        found = conn.execute(select(escalations.c.review_key, escalations.c.review_url)
                             .where(escalations.c.id == esc_id)).one()
    return found.review_key, found.review_url


# -- GitHub -----------------------------------------------------------------------------

@pytest.fixture
def gh(httpx_mock: HTTPXMock) -> GitHubStandIn:
    return GitHubStandIn(GITHUB_API).install(httpx_mock)


def gh_adapters() -> dict[str, OutboundAdapter]:
    return {"github": github.outbound(Settings(github_api_url=GITHUB_API, github_token="gh-token"))}


def test_github_review_is_opened_assigned_and_named_on_the_escalation(
        engine: Engine, gh: GitHubStandIn, httpx_mock: HTTPXMock) -> None:
    esc_id, action_id = escalation_with_review(engine, "github", "acme/reviews")
    actor(engine, gh_adapters(), Clock(), []).drain()
    [issue] = gh.opened("acme/reviews")
    assert issue.title == "Review: legal trouble (OPS-1) [escalation 1]"
    assert issue.body.startswith("# Review of escalation 1")
    assert f"<!-- firstline:action:{action_id} -->" in issue.body
    assert (issue.assignees, issue.labels) == (["Codertocat"], ["postmortem"])
    assert row(engine, action_id).status == "done"
    assert ticket(engine, esc_id) == ("acme/reviews#1",
                                      "https://github.com/acme/reviews/issues/1")
    assert [(r.method, r.url.path) for r in httpx_mock.get_requests()] == [
        ("POST", "/repos/acme/reviews/issues")]  # a first try has nothing to look for


@pytest.mark.parametrize("fault", [httpx.ReadTimeout("timed out"),
                                   httpx.Response(500, json={"message": "boom"})])
def test_github_review_opened_before_its_answer_failed_is_not_opened_again(
        fault: Any, engine: Engine, gh: GitHubStandIn, httpx_mock: HTTPXMock) -> None:
    gh.add("acme/reviews", 1, [])  # an older issue the lookup passes over
    gh.issues[("acme/reviews", 1)].labels.append("postmortem")
    gh.fail("POST", "/repos/acme/reviews/issues", fault, applied=True)
    esc_id, action_id = escalation_with_review(engine, "github", "acme/reviews")
    actor(engine, gh_adapters(), Clock(), []).drain()
    assert len(gh.opened("acme/reviews")) == 2 and row(engine, action_id).status == "done"
    assert ticket(engine, esc_id)[0] == "acme/reviews#2"
    listing = [r.url for r in httpx_mock.get_requests() if r.method == "GET"]
    assert [u.params["labels"] for u in listing] == ["postmortem"]


def test_github_dropping_the_assignee_is_a_failure_naming_the_issue(
        engine: Engine, gh: GitHubStandIn) -> None:
    gh.unassignable.add("Codertocat")
    esc_id, action_id = escalation_with_review(engine, "github", "acme/reviews")
    actor(engine, gh_adapters(), Clock(), []).drain()
    dead = row(engine, action_id)
    assert dead.status == "dead" and "did not assign Codertocat" in dead.last_error
    assert ticket(engine, esc_id)[0] == "acme/reviews#1"  # made, so named all the same
    assert len(gh.opened("acme/reviews")) == 1


def test_github_review_in_something_that_is_not_a_repository_is_dead(
        engine: Engine, httpx_mock: HTTPXMock) -> None:
    _, action_id = escalation_with_review(engine, "github", "just-a-name")
    actor(engine, gh_adapters(), Clock(), []).drain()
    assert "not a GitHub repository" in row(engine, action_id).last_error
    assert httpx_mock.get_requests() == []


# -- Jira -------------------------------------------------------------------------------

def test_jira_review_is_created_with_its_label_and_property(engine: Engine) -> None:
    with JiraStandin() as standin:
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="jira-token")
        esc_id, action_id = escalation_with_review(engine, "jira", "REV")
        actor(engine, {"jira": jira.outbound(settings)}, Clock(), []).drain()
        [issue] = standin.created("REV")
    assert (issue.key, issue.summary, issue.issue_type) == (
        "REV-1", "Review: legal trouble (OPS-1) [escalation 1]", "Task")
    assert issue.assignee == OWNER["jira"]
    assert issue.labels == ["postmortem", f"firstline-review-{esc_id}"]
    assert issue.properties == [{"key": "firstline", "value": {"action": action_id}}]
    assert ticket(engine, esc_id) == ("REV-1", f"{standin.url}/browse/REV-1")


def test_jira_review_created_before_a_timeout_is_found_by_its_label(engine: Engine) -> None:
    with JiraStandin() as standin:
        standin.slow[("POST", "/rest/api/2/issue")] = 1.5  # made at once, answered late
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="jira-token")
        esc_id, action_id = escalation_with_review(engine, "jira", "REV")
        actor(engine, {"jira": jira.outbound(settings, timeout=0.5)}, Clock(), []).drain()
        assert len(standin.created("REV")) == 1 and row(engine, action_id).status == "done"
        searched = [r.query["jql"][0] for r in standin.requests if r.path.endswith("/jql")]
    assert searched == [f'project = "REV" AND labels = "firstline-review-{esc_id}"']
    assert ticket(engine, esc_id)[0] == "REV-1"


def test_jira_review_survives_the_performer_killed_before_recording(
        engine: Engine, db_url: str) -> None:
    """The worker creates the issue and is killed before recording it; the restarted one
    finds the issue by its label and creates nothing."""
    with JiraStandin() as standin:
        standin.slow[("POST", "/rest/api/2/issue")] = 60.0  # applied at once, answered late
        esc_id, action_id = escalation_with_review(engine, "jira", "REV")
        env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url,
               "FIRSTLINE_RULES": str(ROOT / "examples" / "scope.yaml"),
               "FIRSTLINE_JIRA_URL": standin.url, "FIRSTLINE_JIRA_EMAIL": "b@x.io",
               "FIRSTLINE_JIRA_API_TOKEN": "jira-token"}
        worker = subprocess.Popen([sys.executable, "-m", "router.cli", "worker"], env=env,
                                  cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            eventually(lambda: standin.created("REV"), "the worker to create the issue",
                       timeout=60)
        finally:
            worker.kill()
            worker.wait(10)
        assert row(engine, action_id).status == "pending"  # performed, never recorded
        standin.slow.clear()
        with engine.begin() as conn:  # the killed worker's lease runs out
            conn.execute(update(outbox).values(next_at=datetime.now(UTC) - timedelta(1)))
        again = subprocess.run([sys.executable, "-m", "router.cli", "worker", "--once"],
                               env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr[-2000:]
        assert row(engine, action_id).status == "done"
        assert len(standin.created("REV")) == 1
        creates = [r for r in standin.requests
                   if r.method == "POST" and r.path == "/rest/api/2/issue"]
    assert len(creates) == 1 and ticket(engine, esc_id)[0] == "REV-1"


# -- Linear -----------------------------------------------------------------------------

@pytest.fixture
def lin(httpx_mock: HTTPXMock) -> LinearStandIn:
    standin = LinearStandIn(LINEAR_API).install(httpx_mock)
    standin.add_team("WEB")
    return standin


def linear_adapters() -> dict[str, OutboundAdapter]:
    return {"linear": linear.outbound(Settings(linear_api_url=LINEAR_API,
                                               linear_api_key="lin_api_key"))}


def test_linear_review_is_created_in_the_team_with_its_label(
        engine: Engine, lin: LinearStandIn) -> None:
    esc_id, action_id = escalation_with_review(engine, "linear", "WEB")
    actor(engine, linear_adapters(), Clock(), []).drain()
    [issue] = lin.issues.values()
    assert issue["teamId"] == lin.teams["WEB"] and issue["assigneeId"] == OWNER["linear"]
    assert [x["name"] for x in lin.labels[lin.teams["WEB"]]] == ["postmortem"]
    assert issue["labelIds"] == [lin.labels[lin.teams["WEB"]][0]["id"]]
    assert row(engine, action_id).status == "done"
    assert ticket(engine, esc_id) == ("WEB-1", "https://linear.app/acme/issue/WEB-1")


def test_linear_review_created_before_a_timeout_is_found_by_its_id(
        engine: Engine, lin: LinearStandIn, httpx_mock: HTTPXMock) -> None:
    lin.fail("CreateIssue", httpx.ReadTimeout("timed out"), applied=True)
    esc_id, action_id = escalation_with_review(engine, "linear", "WEB")
    actor(engine, linear_adapters(), Clock(), []).drain()
    assert len(lin.issues) == 1 and row(engine, action_id).status == "done"
    operations = [orjson.loads(r.content)["query"].split()[1].partition("(")[0]
                  for r in httpx_mock.get_requests()]
    assert operations == ["TeamByKey", "TeamLabel", "CreateLabel", "CreateIssue", "FindIssue"]
    assert ticket(engine, esc_id)[0] == "WEB-1"


def test_linear_review_for_an_unknown_team_is_dead(engine: Engine, lin: LinearStandIn) -> None:
    _, action_id = escalation_with_review(engine, "linear", "NOPE")
    actor(engine, linear_adapters(), Clock(), []).drain()
    dead = row(engine, action_id)
    assert dead.status == "dead" and "no team with key 'NOPE'" in dead.last_error

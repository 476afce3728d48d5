"""The outbox performer against vendor stand-ins: faults, recovery once, backoff, dead."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, select, update

from adapters import github, jira, pagerduty
from adapters.base import OutboundAdapter
from router.act import Actor
from router.records import outbox
from router.settings import Settings
from tests.standin_github import GitHubStandIn
from tests.standin_jira import JiraStandin, Reply
from tests.standin_pagerduty import PagerDutyStandIn
from tests.support import ROOT

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
GITHUB_API = "https://api.github.test"
GH_TARGET = {"source": "github", "id": "1", "key": "acme/web#7", "kind": "ticket",
             "project": "acme/web", "url": None}
JIRA_TARGET = {"source": "jira", "id": "10042", "key": "OPS-7", "kind": "ticket",
               "project": "OPS", "url": None}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


def queue(engine: Engine, kind: str, target: dict[str, Any], **action: Any) -> int:
    with engine.begin() as conn:
        result = conn.execute(outbox.insert().values(
            decision_id=1, type=kind, target=orjson.dumps(target).decode(),
            action=orjson.dumps({"type": kind, **action}).decode(), status="pending",
            attempts=0, next_at=NOW, created_at=NOW).returning(outbox.c.id))
        return int(result.scalar_one())


def row(engine: Engine, action_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.id == action_id)).one()


def actor(engine: Engine, adapters: dict[str, OutboundAdapter], clock: Clock,
          waits: list[float]) -> Actor:
    return Actor(engine, lambda: adapters, clock, sleep=waits.append)


@pytest.fixture
def settings() -> Iterator[Settings]:
    yield Settings(github_api_url=GITHUB_API, github_token="gh-token",
                   pagerduty_events_url="https://events.pagerduty.test",
                   pagerduty_routing_key="R0UT1NGKEY", pagerduty_api_token="pd",
                   pagerduty_api_url="https://api.pagerduty.test", pagerduty_from="b@x.io")


FAULTS_HTTPX: dict[str, Any] = {
    "429": httpx.Response(429, headers={"Retry-After": "2"}, json={"message": "slow down"}),
    "500": httpx.Response(500, json={"message": "boom"}),
    "503": httpx.Response(503, json={"message": "unavailable"}),
    "timeout": httpx.ReadTimeout("timed out"),
    "refused": httpx.ConnectError("connection refused"),
}


@pytest.mark.parametrize("fault", list(FAULTS_HTTPX))
def test_github_comment_recovers_and_is_posted_once(
        fault: str, engine: Engine, settings: Settings, httpx_mock: HTTPXMock) -> None:
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    issue = gh.add("acme/web", 7, [])
    gh.fail("POST", "/comments", FAULTS_HTTPX[fault])
    action_id = queue(engine, "comment", GH_TARGET, text="handed to eng-lead")
    waits: list[float] = []
    assert actor(engine, {"github": github.outbound(settings)}, Clock(), waits).drain() == 1
    assert row(engine, action_id).status == "done"
    assert len(issue.comments) == 1 and f"firstline:action:{action_id}" in issue.comments[0]
    assert len(waits) == 1 and (waits[0] == 2.0 if fault == "429" else waits[0] <= 5.0)


FAULTS_PD: dict[str, Any] = {
    "429": (429, {"Retry-After": "2"}),
    "500": (500, {}),
    "503": (503, {}),
    "timeout": httpx2.ReadTimeout,
    "refused": httpx2.ConnectError,
}


@pytest.mark.parametrize("fault", list(FAULTS_PD))
def test_page_recovers_and_is_sent_once(fault: str, engine: Engine,
                                        settings: Settings) -> None:
    pd = PagerDutyStandIn()
    answer = FAULTS_PD[fault]
    if isinstance(answer, tuple):
        pd.answer("POST", "/v2/enqueue", answer[0], {"status": "error"}, answer[1])
    else:
        pd.fail("POST", "/v2/enqueue", answer)
    pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": "firstline/x/y"})
    action_id = queue(engine, "page", GH_TARGET, dedup_key="firstline/x/y", text="down",
                      severity="sev1")
    adapters: dict[str, OutboundAdapter] = {
        "pagerduty": pagerduty.outbound(settings, transport=pd.transport)}
    actor(engine, adapters, Clock(), []).drain()
    assert row(engine, action_id).status == "done"
    assert [r.body["dedup_key"] for r in pd.requests] == ["firstline/x/y"] * 2


FAULTS_JIRA = {"429": Reply(429, {"errorMessages": ["slow"]}, {"Retry-After": "2"}),
               "500": Reply(500, {"errorMessages": ["boom"]}),
               "503": Reply(503, {"errorMessages": ["down"]}),
               "timeout": Reply(200, {}, delay=1.5)}


@pytest.mark.parametrize("fault", list(FAULTS_JIRA))
def test_jira_assign_recovers_and_is_written_once(fault: str, engine: Engine) -> None:
    with JiraStandin() as standin:
        standin.add_issue("OPS-7", "10042", assignee="cto-account")
        standin.fail_once("PUT", "/rest/api/2/issue/10042/assignee", FAULTS_JIRA[fault])
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        action_id = queue(engine, "assign", JIRA_TARGET, account="owner-account",
                          remove=["cto-account"])
        adapters: dict[str, OutboundAdapter] = {"jira": jira.outbound(settings, timeout=0.5)}
        actor(engine, adapters, Clock(), []).drain()
        assert row(engine, action_id).status == "done"
        assert standin.issue("10042").assignee == "owner-account"  # type: ignore[union-attr]
        puts = [r for r in standin.requests if r.method == "PUT"]
        assert len(puts) == 2  # the failed one and the one that took effect


def test_jira_connection_refused_is_retried_later(engine: Engine) -> None:
    settings = Settings(jira_url="http://127.0.0.1:1", jira_email="b@x.io", jira_api_token="t")
    action_id = queue(engine, "assign", JIRA_TARGET, account="owner-account")
    clock = Clock()
    actor(engine, {"jira": jira.outbound(settings)}, clock, []).drain()
    waiting = row(engine, action_id)
    assert waiting.status == "pending" and waiting.next_at > NOW
    assert "OPS-7" in waiting.last_error and "t" not in waiting.last_error.split()


def test_quick_tries_spent_then_durable_backoff_then_success(
        engine: Engine, settings: Settings, httpx_mock: HTTPXMock) -> None:
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    issue = gh.add("acme/web", 7, [])
    for _ in range(3):  # as many as the quick tries
        gh.fail("POST", "/comments", httpx.Response(502, json={"message": "bad gateway"}))
    action_id = queue(engine, "comment", GH_TARGET, text="hello")
    clock = Clock()
    performer = actor(engine, {"github": github.outbound(settings)}, clock, [])
    performer.drain()
    waiting = row(engine, action_id)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert "502" in waiting.last_error and waiting.next_at > NOW + timedelta(seconds=10)
    assert performer.drain() == 0  # not due yet
    clock.now = waiting.next_at
    performer.drain()
    assert row(engine, action_id).status == "done" and len(issue.comments) == 1


def test_a_permanent_failure_is_dead_listed_and_can_be_retried(
        engine: Engine, db_url: str, settings: Settings, httpx_mock: HTTPXMock) -> None:
    GitHubStandIn(GITHUB_API).install(httpx_mock)  # no such issue: 404
    action_id = queue(engine, "comment", GH_TARGET, text="hello")
    performer = actor(engine, {"github": github.outbound(settings)}, Clock(), [])
    performer.drain()
    dead = row(engine, action_id)
    assert dead.status == "dead" and "404" in dead.last_error and performer.dead == 1
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url}
    listed = subprocess.run([sys.executable, "-m", "router.cli", "outbox", "list", "--status",
                             "dead"], env=env, cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert listed.returncode == 0 and "acme/web#7" in listed.stdout, listed.stderr
    retried = subprocess.run([sys.executable, "-m", "router.cli", "outbox", "retry",
                              str(action_id)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert retried.returncode == 0, retried.stderr
    assert (row(engine, action_id).status, row(engine, action_id).attempts) == ("pending", 0)
    missing = subprocess.run([sys.executable, "-m", "router.cli", "outbox", "retry", "999"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "no action 999" in missing.stderr


def test_a_crash_between_performing_and_recording_doubles_nothing(
        engine: Engine, db_url: str, tmp_path: Any) -> None:
    """The worker posts the comment, is killed before recording it, restarts: one comment."""
    comment_path = "/rest/api/2/issue/10042/comment"
    with JiraStandin() as standin:
        issue = standin.add_issue("OPS-7", "10042")
        standin.slow[("POST", comment_path)] = 60.0  # applied at once, answered much later
        action_id = queue(engine, "comment", JIRA_TARGET, text="handed to eng-lead")
        env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url,
               "FIRSTLINE_RULES": str(ROOT / "examples" / "scope.yaml"),
               "FIRSTLINE_JIRA_URL": standin.url, "FIRSTLINE_JIRA_EMAIL": "b@x.io",
               "FIRSTLINE_JIRA_API_TOKEN": "t"}
        worker = subprocess.Popen([sys.executable, "-m", "router.cli", "worker"], env=env,
                                  cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = datetime.now(UTC) + timedelta(seconds=60)
            while not issue.comments:
                assert datetime.now(UTC) < deadline, "the worker never posted"
                time.sleep(0.05)
        finally:
            worker.kill()
            worker.wait(10)
        assert row(engine, action_id).status == "pending"  # performed, never recorded
        standin.slow.clear()
        with engine.begin() as conn:  # the lease of the killed worker runs out
            conn.execute(update(outbox).values(next_at=NOW))
        again = subprocess.run([sys.executable, "-m", "router.cli", "worker", "--once"],
                               env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr[-2000:]
        assert row(engine, action_id).status == "done"
        assert len(issue.comments) == 1
        posts = [r for r in standin.requests if r.method == "POST" and r.path == comment_path]
        assert len(posts) == 1  # the retry found the comment by its property, posted nothing

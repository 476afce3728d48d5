"""The outbox performer against vendor stand-ins: faults, recovery once, backoff, dead,
first tries that skip the marker lookup, batches recorded at once, items side by side, and
each item's actions in order across performers."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import httpx2
import orjson
import pytest
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine, event, func, make_url, select, update

from adapters import github, jira, pagerduty
from adapters.base import OutboundAction, OutboundAdapter, Target
from router.db.engine import make_engine, worker_engine
from router.db.tables import outbox
from router.settings import Settings
from router.work.outbox import Performer, lanes
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
            item=f"{target['source']}:{target['id']}",
            action=orjson.dumps({"type": kind, **action}).decode(), status="pending",
            attempts=0, next_at=NOW, created_at=NOW).returning(outbox.c.id))
        return int(result.scalar_one())


def row(engine: Engine, action_id: int) -> Any:
    with engine.connect() as conn:
        return conn.execute(select(outbox).where(outbox.c.id == action_id)).one()


def actor(engine: Engine, adapters: dict[str, OutboundAdapter], clock: Clock,
          waits: list[float], concurrency: int = 8) -> Performer:
    return Performer(engine, lambda: adapters, clock, sleep=waits.append, concurrency=concurrency)


def calls(httpx_mock: HTTPXMock) -> list[tuple[str, str]]:
    return [(r.method, r.url.path) for r in httpx_mock.get_requests()]


GH_COMMENTS = "/repos/acme/web/issues/7/comments"


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
    assert calls(httpx_mock) == [("POST", GH_COMMENTS), ("GET", GH_COMMENTS),
                                 ("POST", GH_COMMENTS)]


def test_a_first_try_posts_without_looking_for_the_marker(
        engine: Engine, settings: Settings, httpx_mock: HTTPXMock) -> None:
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    issue = gh.add("acme/web", 7, [])
    action_id = queue(engine, "comment", GH_TARGET, text="handed to eng-lead")
    assert actor(engine, {"github": github.outbound(settings)}, Clock(), []).drain() == 1
    assert row(engine, action_id).status == "done" and len(issue.comments) == 1
    assert calls(httpx_mock) == [("POST", GH_COMMENTS)]


@pytest.mark.parametrize("fault", ["timeout", "500"])
def test_a_comment_posted_before_its_answer_failed_is_not_posted_again(
        fault: str, engine: Engine, settings: Settings, httpx_mock: HTTPXMock) -> None:
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    issue = gh.add("acme/web", 7, [])
    gh.fail("POST", "/comments", FAULTS_HTTPX[fault], applied=True)
    action_id = queue(engine, "comment", GH_TARGET, text="handed to eng-lead")
    actor(engine, {"github": github.outbound(settings)}, Clock(), []).drain()
    assert row(engine, action_id).status == "done" and len(issue.comments) == 1
    assert calls(httpx_mock) == [("POST", GH_COMMENTS), ("GET", GH_COMMENTS)]


def test_an_operator_retry_still_looks_for_the_marker(
        engine: Engine, db_url: str, settings: Settings, httpx_mock: HTTPXMock) -> None:
    """`firstline outbox retry` resets the attempts; the row is still no first try."""
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    issue = gh.add("acme/web", 7, [])
    gh.fail("POST", "/comments", httpx.ReadTimeout("timed out"), applied=True)
    for _ in range(2):  # the quick tries' lookups fail too: the action waits, posted
        gh.fail("GET", "/comments", httpx.Response(502, json={"message": "bad gateway"}))
    action_id = queue(engine, "comment", GH_TARGET, text="handed to eng-lead")
    clock = Clock()
    performer = actor(engine, {"github": github.outbound(settings)}, clock, [])
    performer.drain()
    assert row(engine, action_id).status == "pending" and len(issue.comments) == 1
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url}
    retried = subprocess.run([sys.executable, "-m", "router.cli", "outbox", "retry",
                              str(action_id)], env=env, cwd=ROOT, capture_output=True,
                             text=True, timeout=60)
    assert retried.returncode == 0, retried.stderr
    assert row(engine, action_id).attempts == 0
    clock.now = max(NOW, row(engine, action_id).next_at)  # due now, by the CLI's clock
    performer.drain()
    assert row(engine, action_id).status == "done" and len(issue.comments) == 1
    assert calls(httpx_mock)[-1] == ("GET", GH_COMMENTS)


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
    assert calls(httpx_mock)[-2:] == [("GET", GH_COMMENTS), ("POST", GH_COMMENTS)]


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


# -- batches: recorded in one transaction ----------------------------------------------------


def gh_target(number: int) -> dict[str, Any]:
    return {**GH_TARGET, "id": str(number), "key": f"acme/web#{number}"}


def test_a_batch_is_recorded_in_one_transaction(
        engine: Engine, settings: Settings, httpx_mock: HTTPXMock) -> None:
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    gh.add("acme/web", 7, [])
    gh.add("acme/web", 9, [])
    for _ in range(3):  # every quick try of #9's comment fails: it waits
        gh.fail("POST", "/issues/9/comments", httpx.Response(502, json={"message": "bad"}))
    done = queue(engine, "comment", gh_target(7), text="hello")
    dead = queue(engine, "comment", gh_target(8), text="hello")  # no such issue: 404
    waiting = queue(engine, "comment", gh_target(9), text="hello")
    commits: list[object] = []

    def committed(conn: Any) -> None:
        commits.append(conn)

    event.listen(engine, "commit", committed)
    try:
        performer = actor(engine, {"github": github.outbound(settings)}, Clock(), [])
        assert performer.run_once() == 3
    finally:
        event.remove(engine, "commit", committed)
    assert len(commits) == 2  # the claim and the whole batch's results
    assert (row(engine, done).status, row(engine, done).done_at) == ("done", NOW)
    assert row(engine, dead).status == "dead" and "404" in row(engine, dead).last_error
    later = row(engine, waiting)
    assert (later.status, later.attempts) == ("pending", 1) and "502" in later.last_error
    assert later.next_at > NOW + timedelta(seconds=10)
    assert (performer.done, performer.dead) == (1, 1)


def test_recording_waits_out_a_busy_sqlite_lock(
        db_url: str, settings: Settings, httpx_mock: HTTPXMock) -> None:
    """Another writer holds SQLite's lock past the busy timeout: recording tries again."""
    if not db_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer lock")
    engine = make_engine(db_url)
    event.listen(engine, "connect", lambda conn, _: conn.execute("PRAGMA busy_timeout=20"))
    other = sqlite3.connect(str(make_url(db_url).database), isolation_level=None,
                            check_same_thread=False)
    gh = GitHubStandIn(GITHUB_API)
    gh.add("acme/web", 7, [])

    def post_then_lock(request: httpx.Request) -> httpx.Response:
        other.execute("BEGIN IMMEDIATE")  # held when the performer comes to record
        return gh._handle(request)

    def release(context: Any) -> None:
        if other.in_transaction:
            other.execute("ROLLBACK")

    httpx_mock.add_callback(post_then_lock, method="POST")
    event.listen(engine, "handle_error", release)
    try:
        action_id = queue(engine, "comment", GH_TARGET, text="hello")
        actor(engine, {"github": github.outbound(settings)}, Clock(), []).run_once()
        assert row(engine, action_id).status == "done"
        assert not other.in_transaction  # the lock was busy once, then recording went on
    finally:
        other.close()
        engine.dispose()


# -- items side by side, each in order ---------------------------------------------------------


def _action(action_id: int, kind: str, item: str, dedup_key: str | None = None
            ) -> tuple[int, OutboundAction]:
    target = Target(source="github", id=item, key=f"acme/web#{item}", kind="ticket",
                    project="acme/web")
    return action_id, OutboundAction(id=action_id, type=kind, target=target, dedup_key=dedup_key)


def test_lanes_keep_each_item_and_each_page_key_in_order() -> None:
    group, other = "firstline/t/g", "firstline/t/other"
    batch = [_action(1, "comment", "a"), _action(2, "assign", "b"), _action(3, "comment", "c"),
             _action(4, "resolve_page", "a", group), _action(5, "page", "c", group),
             _action(6, "page", "e", other), _action(7, "comment", "b"),
             _action(8, "comment", "a")]
    # a's and c's lanes merge at the group's page: c's trigger waits for a's resolve
    assert [[n for n, _ in lane] for lane in lanes(batch)] == [[1, 3, 4, 5, 8], [2, 7], [6]]


def test_a_concurrency_below_one_is_refused(engine: Engine) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        Performer(engine, dict, Clock(), concurrency=0)


def queue_items(engine: Engine, standin: JiraStandin, count: int) -> dict[str, list[int]]:
    """Queue an assign for each of `count` issues, then a comment for each."""
    ids: dict[str, list[int]] = {}
    targets: list[dict[str, Any]] = [{**JIRA_TARGET, "id": str(20000 + n), "key": f"OPS-{n}"}
                                     for n in range(count)]
    for target in targets:
        standin.add_issue(target["key"], target["id"], assignee="cto-account")
    for kind, fields in (("assign", {"account": "owner-account", "remove": ["cto-account"]}),
                         ("comment", {"text": "handed to eng-lead"})):
        for target in targets:
            ids.setdefault(target["id"], []).append(queue(engine, kind, target, **fields))
    return ids


def test_items_are_performed_side_by_side_each_in_order(engine: Engine) -> None:
    with JiraStandin() as standin:
        standin.latency = 0.3  # as slow as a real Jira
        ids = queue_items(engine, standin, 8)
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        performer = actor(engine, {"jira": jira.outbound(settings)}, Clock(), [])
        assert performer.run_once() == 16
        assert standin.max_in_flight == 8  # every item at once, not one after another
        for issue_id, (assign_id, comment_id) in ids.items():
            assert row(engine, assign_id).status == row(engine, comment_id).status == "done"
            paths = [r.path for r in standin.writes() if f"/issue/{issue_id}/" in r.path]
            assert paths == [f"/rest/api/2/issue/{issue_id}/assignee",  # the assign first
                             f"/rest/api/2/issue/{issue_id}/comment"]
            assert standin.issue(issue_id).assignee == "owner-account"  # type: ignore[union-attr]


def test_a_concurrency_of_one_performs_the_batch_in_id_order(engine: Engine) -> None:
    with JiraStandin() as standin:
        standin.latency = 0.02
        queue_items(engine, standin, 3)
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        performer = actor(engine, {"jira": jira.outbound(settings)}, Clock(), [], concurrency=1)
        assert performer.run_once() == 6
        assert standin.max_in_flight == 1
        assert [(r.method, r.path.split("/")[5]) for r in standin.writes()] == [
            ("PUT", "20000"), ("PUT", "20001"), ("PUT", "20002"),
            ("POST", "20000"), ("POST", "20001"), ("POST", "20002")]


# -- each item in order across performers ------------------------------------------------------


def pending(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox)
                                .where(outbox.c.status == "pending")).scalar_one())


def item_writes(standin: JiraStandin, issue_id: str) -> list[str]:
    return [r.path.rsplit("/", 1)[1] for r in standin.writes() if f"/issue/{issue_id}/" in r.path]


def test_two_performers_draining_one_outbox_keep_each_items_actions_in_order(
        db_url: str, engine: Engine) -> None:
    """Two performers with engines of their own, as two processes have, drain at once: the
    claims fall across items and batches, yet no comment overtakes its item's assign."""
    with JiraStandin() as standin:
        standin.latency = 0.2  # an assign (read, then write) outlasts the other's claim
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        engines = [worker_engine(db_url) for _ in range(2)]
        performers = [Performer(e, lambda: {"jira": jira.outbound(settings)}, Clock(), batch=4,
                            sleep=lambda _: None) for e in engines]
        ids = queue_items(engine, standin, 6)  # 6 assigns, then 6 comments
        start = threading.Barrier(len(performers))

        def drain(performer: Performer) -> None:
            start.wait()
            deadline = time.monotonic() + 60
            while pending(performer.engine):
                assert time.monotonic() < deadline, "the outbox was never drained"
                if performer.run_once() == 0:
                    time.sleep(0.02)

        try:
            with ThreadPoolExecutor(len(performers)) as pool:
                list(pool.map(drain, performers))
        finally:
            for performer in performers:
                performer.close()
                performer.engine.dispose()
        assert all(p.done for p in performers)  # both took part
        assert sum(p.done for p in performers) == 12
        for issue_id, (assign_id, comment_id) in ids.items():
            assert row(engine, assign_id).status == row(engine, comment_id).status == "done"
            assert item_writes(standin, issue_id) == ["assignee", "comment"], issue_id



def test_a_claim_under_way_makes_the_next_wait_so_none_splits_an_item(
        db_url: str, engine: Engine) -> None:
    """One claim has read its rows but not committed their leases yet: the next claim waits
    for it. Skipping the locked rows instead, it would take their items' later actions."""
    with JiraStandin() as standin:
        standin.latency = 0.2
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        engines = [worker_engine(db_url) for _ in range(2)]
        performers = [Performer(e, lambda: {"jira": jira.outbound(settings)}, Clock(), batch=4,
                            sleep=lambda _: None) for e in engines]
        read = threading.Event()

        def linger(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            if "AS earlier" in statement and not read.is_set():  # the claim's query
                read.set()
                time.sleep(0.5)  # before the leases are written and committed

        event.listen(engines[0], "after_cursor_execute", linger)
        ids = queue_items(engine, standin, 3)  # 3 assigns, then 3 comments
        try:
            with ThreadPoolExecutor(2) as pool:
                first = pool.submit(performers[0].run_once)
                assert read.wait(10)
                second = pool.submit(performers[1].run_once)
                claimed = (first.result(), second.result())
        finally:
            for performer in performers:
                performer.close()
                performer.engine.dispose()
        assert claimed == (4, 0)  # the 3 assigns and the first comment; the rest held back
        assert item_writes(standin, "20000") == ["assignee", "comment"]
        for issue_id in ("20001", "20002"):
            assert item_writes(standin, issue_id) == ["assignee"]
            assert row(engine, ids[issue_id][1]).attempts == 0


OTHER_JIRA_TARGET = {**JIRA_TARGET, "id": "10043", "key": "OPS-8"}
ASSIGN = {"account": "owner-account", "remove": ["cto-account"]}


def test_an_action_backing_off_holds_back_the_later_actions_of_its_item_only(
        engine: Engine) -> None:
    with JiraStandin() as standin:
        standin.add_issue("OPS-7", "10042", assignee="cto-account")
        standin.add_issue("OPS-8", "10043", assignee="cto-account")
        standin.fail_once("GET", "/rest/api/2/issue/10042",
                          Reply(429, {"errorMessages": ["slow"]}, {"Retry-After": "600"}))
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        clock = Clock()
        performer = actor(engine, {"jira": jira.outbound(settings)}, clock, [])
        assign = queue(engine, "assign", JIRA_TARGET, **ASSIGN)
        assert performer.run_once() == 1
        backing_off = row(engine, assign)
        assert backing_off.status == "pending"
        assert backing_off.next_at >= NOW + timedelta(seconds=600)
        comment = queue(engine, "comment", JIRA_TARGET, text="handed to eng-lead")
        others = [queue(engine, "assign", OTHER_JIRA_TARGET, **ASSIGN),
                  queue(engine, "comment", OTHER_JIRA_TARGET, text="handed to eng-lead")]
        unnamed = queue(engine, "comment", JIRA_TARGET, text="queued before 0004")
        with engine.begin() as conn:  # no item to keep in order: nothing holds it back
            conn.execute(update(outbox).where(outbox.c.id == unnamed).values(item=None))
        assert performer.run_once() == 3
        assert [row(engine, i).status for i in [*others, unnamed]] == ["done"] * 3
        assert item_writes(standin, "10043") == ["assignee", "comment"]
        held = row(engine, comment)
        assert (held.status, held.attempts, held.next_at) == ("pending", 0, NOW)
        assert performer.run_once() == 0
        clock.now = backing_off.next_at
        assert performer.run_once() == 2  # the assign, then its comment, in one batch
        assert row(engine, assign).status == row(engine, comment).status == "done"
        assert item_writes(standin, "10042") == ["comment", "assignee", "comment"]


def test_a_dead_action_holds_nothing_back(engine: Engine) -> None:
    with JiraStandin() as standin:
        standin.add_issue("OPS-7", "10042", assignee="cto-account")
        standin.fail_once("GET", "/rest/api/2/issue/10042",
                          Reply(403, {"errorMessages": ["You may not see this issue."]}))
        settings = Settings(jira_url=standin.url, jira_email="b@x.io", jira_api_token="t")
        performer = actor(engine, {"jira": jira.outbound(settings)}, Clock(), [])
        assign = queue(engine, "assign", JIRA_TARGET, **ASSIGN)
        assert performer.run_once() == 1 and row(engine, assign).status == "dead"
        comment = queue(engine, "comment", JIRA_TARGET, text="handed to eng-lead")
        assert performer.run_once() == 1 and row(engine, comment).status == "done"


def test_an_action_to_be_retried_holds_its_items_later_actions_back(
        engine: Engine, settings: Settings, httpx_mock: HTTPXMock) -> None:
    """Assign and comment are claimed together; the assign fails past its quick tries, so
    the comment is not posted before it: it goes back untouched, and follows the assign
    once that is done."""
    gh = GitHubStandIn(GITHUB_API).install(httpx_mock)
    issue = gh.add("acme/web", 7, ["dreyes"])
    for _ in range(3):  # as many as the quick tries
        gh.fail("GET", "/issues/7", httpx.Response(503, json={"message": "unavailable"}))
    assign = queue(engine, "assign", GH_TARGET, account="eng-lead", remove=["dreyes"])
    comment = queue(engine, "comment", GH_TARGET, text="handed to eng-lead")
    clock = Clock()
    performer = actor(engine, {"github": github.outbound(settings)}, clock, [])
    assert performer.run_once() == 2
    waiting, untouched = row(engine, assign), row(engine, comment)
    assert (waiting.status, waiting.attempts) == ("pending", 1)
    assert (untouched.status, untouched.attempts, untouched.next_at) == ("pending", 0, NOW)
    assert issue.comments == []
    assert performer.drain() == 0  # the comment waits behind the assign's backoff
    clock.now = waiting.next_at
    assert performer.drain() == 2
    assert row(engine, assign).status == row(engine, comment).status == "done"
    assert issue.assignees == ["eng-lead"] and len(issue.comments) == 1
    assert calls(httpx_mock)[-1] == ("POST", GH_COMMENTS)  # still a first try: no GET


def test_running_performer_records_each_lane_when_it_finishes(engine: Engine) -> None:
    """`Actor.run` does not hold a fast item's result until a slow item in the same claim
    is done: the fast one is recorded while the slow one is still being performed."""
    with JiraStandin(email="bot@example.com", token="t") as standin:
        standin.add_issue("OPS-1", "10001")
        standin.add_issue("OPS-2", "10002")
        release = threading.Event()
        standin.reply("PUT", "/rest/api/2/issue/10001/assignee",
                      Reply(204, None, hold=release))
        settings = Settings(jira_url=standin.url, jira_email="bot@example.com",
                            jira_api_token="t")
        slow = queue(engine, "assign", {**JIRA_TARGET, "id": "10001", "key": "OPS-1"},
                     account="eng-lead")
        fast = queue(engine, "assign", {**JIRA_TARGET, "id": "10002", "key": "OPS-2"},
                     account="eng-lead")
        performer = Performer(engine, lambda: {"jira": jira.outbound(settings)},
                          lambda: datetime.now(UTC), concurrency=4)
        stop = threading.Event()
        running = threading.Thread(target=performer.run, args=(stop,))
        running.start()
        try:
            deadline = time.monotonic() + 30
            while row(engine, fast).status != "done":
                assert time.monotonic() < deadline, "the fast item was never recorded"
                time.sleep(0.02)
            assert row(engine, slow).status == "pending"  # still in the hands of its lane
        finally:
            release.set()
            stop.set()
            performer.wake()
            running.join(30)
        assert row(engine, slow).status == "done"  # finished and recorded on the way out


def test_running_performer_records_lanes_finishing_together_in_one_transaction(
        engine: Engine) -> None:
    """Finished lanes wait up to `record_wait` for others and are recorded together."""
    with JiraStandin(email="bot@example.com", token="t") as standin:
        for n in (1, 2, 3):
            standin.add_issue(f"OPS-{n}", f"1000{n}")
        release = threading.Event()
        standin.reply("PUT", "/rest/api/2/issue/10001/assignee", Reply(204, None, hold=release))
        settings = Settings(jira_url=standin.url, jira_email="bot@example.com",
                            jira_api_token="t")
        ids = [queue(engine, "assign", {**JIRA_TARGET, "id": f"1000{n}", "key": f"OPS-{n}"},
                     account="eng-lead") for n in (1, 2, 3)]
        performer = Performer(engine, lambda: {"jira": jira.outbound(settings)},
                          lambda: datetime.now(UTC), concurrency=4)
        commits: list[object] = []
        committed = commits.append
        event.listen(engine, "commit", committed)
        stop = threading.Event()
        running = threading.Thread(target=performer.run, args=(stop, 60, 3))
        running.start()
        try:
            deadline = time.monotonic() + 30
            while len(standin.writes()) < 3:  # all three lanes have called Jira
                assert time.monotonic() < deadline, "the lanes never called Jira"
                time.sleep(0.02)
            time.sleep(0.3)  # the fast lanes are finished: their results wait (3 s at most)
            assert [row(engine, i).status for i in ids] == ["pending"] * 3
            assert len(commits) == 1  # the claim only
            release.set()
            while row(engine, ids[0]).status != "done":
                assert time.monotonic() < deadline, "the results were never recorded"
                time.sleep(0.02)
            assert [row(engine, i).status for i in ids] == ["done"] * 3
            assert len(commits) == 2  # the three results in one transaction
        finally:
            release.set()
            stop.set()
            performer.wake()
            running.join(30)
            event.remove(engine, "commit", committed)


def test_a_running_performer_claims_again_soon_after_the_database_failed(
        engine: Engine) -> None:
    """A claim that fails (here: the outbox is gone for a moment) is tried again within a
    fraction of a second, not at the next idle poll (a minute here)."""
    with JiraStandin(email="bot@example.com", token="t") as standin:
        standin.add_issue("OPS-1", "10001")
        settings = Settings(jira_url=standin.url, jira_email="bot@example.com",
                            jira_api_token="t")
        action = queue(engine, "assign", {**JIRA_TARGET, "id": "10001", "key": "OPS-1"},
                       account="eng-lead")
        with engine.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE outbox RENAME TO outbox_away")
        performer = Performer(engine, lambda: {"jira": jira.outbound(settings)},
                          lambda: datetime.now(UTC), concurrency=4)
        stop = threading.Event()
        running = threading.Thread(target=performer.run, args=(stop, 60))
        running.start()
        try:
            time.sleep(1.5)  # claims fail meanwhile (SQLite: after its record tries)
            with engine.begin() as conn:
                conn.exec_driver_sql("ALTER TABLE outbox_away RENAME TO outbox")
            deadline = time.monotonic() + 20
            while row(engine, action).status != "done":
                assert time.monotonic() < deadline, "the claim was not tried again"
                time.sleep(0.05)
        finally:
            stop.set()
            performer.wake()
            running.join(30)
        assert [r.path for r in standin.writes()] == ["/rest/api/2/issue/10001/assignee"]

"""GitHub delivery gaps (router.work.github_gaps): failed deliveries the inbox lacks are
asked for again, against a stateful stand-in of GitHub's hook delivery log."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pydantic import ValidationError
from pytest_httpx import HTTPXMock
from sqlalchemy import Engine

from adapters.github.deliveries import DeliveryLog, hooks
from router.db.inbox import Delivery, insert_delivery
from router.settings import Settings
from router.work.github_gaps import MAX_REDELIVERIES, GapFinder
from tests.standin_github import GitHubStandIn
from tests.vendors import VENDOR

API = "https://api.github.test"
REPO_HOOK = "/repos/octo-org/hello-world/hooks/12345678"
ORG_HOOK = "/orgs/octo-org/hooks/42"
NOW = datetime.now(UTC)


@pytest.fixture
def gh(httpx_mock: HTTPXMock) -> GitHubStandIn:
    standin = GitHubStandIn(API).install(httpx_mock)
    standin.hooks[REPO_HOOK] = []
    standin.hooks[ORG_HOOK] = []
    return standin


def finder(db_url: str, engine: Engine, hook_ids: str = "octo-org/hello-world:12345678,"
           "octo-org:42") -> GapFinder:
    settings = Settings(database_url=db_url, github_token="gh-token", github_api_url=API,
                        github_hook_ids=hook_ids)
    return GapFinder(engine, DeliveryLog(settings), hooks(settings))


def store(engine: Engine, guid: str) -> None:
    with engine.begin() as conn:
        insert_delivery(conn, Delivery("github", guid, "issues", "{}", (
            VENDOR / "github" / "issues.opened.json").read_bytes(), NOW))


def test_a_failed_delivery_missing_from_the_inbox_is_asked_for_once(
        db_url: str, engine: Engine, gh: GitHubStandIn) -> None:
    lost = gh.add_delivery(REPO_HOOK, "lost-1", 502, NOW - timedelta(hours=2))
    gh.add_delivery(REPO_HOOK, "fine-1", 200, NOW - timedelta(hours=1))
    org_lost = gh.add_delivery(ORG_HOOK, "lost-2", 0, NOW - timedelta(minutes=5))  # timed out
    gaps = finder(db_url, engine)
    assert gaps.run_once().redelivered == ["lost-1", "lost-2"]
    assert gh.redeliveries == [(REPO_HOOK, lost["id"]), (ORG_HOOK, org_lost["id"])]
    store(engine, "lost-1")  # GitHub redelivered them (the stand-in logs a 200 attempt)
    store(engine, "lost-2")
    assert gaps.run_once().redelivered == []
    assert len(gh.redeliveries) == 2


def test_a_failed_delivery_already_stored_is_not_asked_for(
        db_url: str, engine: Engine, gh: GitHubStandIn) -> None:
    """GitHub timed out waiting (10 s) but firstline had stored it: nothing is lost."""
    gh.add_delivery(REPO_HOOK, "slow-but-stored", 0, NOW - timedelta(minutes=30))
    store(engine, "slow-but-stored")
    assert finder(db_url, engine).run_once().redelivered == []
    assert gh.redeliveries == []


def test_every_page_is_read_and_requests_stay_on_the_configured_api(
        db_url: str, engine: Engine, gh: GitHubStandIn, httpx_mock: HTTPXMock) -> None:
    lost = gh.add_delivery(REPO_HOOK, "on-page-3", 503, NOW - timedelta(hours=10))
    for n in range(240):
        gh.add_delivery(REPO_HOOK, f"ok-{n}", 200, NOW - timedelta(hours=9) + timedelta(
            seconds=n))
    check = finder(db_url, engine, "octo-org/hello-world:12345678").run_once()
    assert (check.seen, check.redelivered) == (241, ["on-page-3"])
    assert gh.redeliveries == [(REPO_HOOK, lost["id"])]
    lists = [r for r in httpx_mock.get_requests() if r.method == "GET"]
    assert [r.url.params.get("cursor") is not None for r in lists] == [False, True, True]
    assert {r.url.host for r in httpx_mock.get_requests()} == {"api.github.test"}
    assert all(r.headers["authorization"] == "Bearer gh-token" for r in lists)


def test_a_delivery_that_keeps_failing_is_asked_for_a_bounded_number_of_times(
        db_url: str, engine: Engine, gh: GitHubStandIn) -> None:
    gh.redelivery_status = 503  # firstline's HTTP side is still down
    gh.add_delivery(REPO_HOOK, "doomed", 503, NOW - timedelta(hours=1))
    gaps = finder(db_url, engine)
    for _ in range(MAX_REDELIVERIES + 3):
        gaps.run_once()
    assert len(gh.redeliveries) == MAX_REDELIVERIES
    fresh = finder(db_url, engine)  # a restarted worker counts GitHub's redelivery attempts
    assert fresh.run_once().redelivered == []


def test_deliveries_older_than_the_look_back_are_left_alone(
        db_url: str, engine: Engine, gh: GitHubStandIn) -> None:
    gh.add_delivery(REPO_HOOK, "ancient", 500, NOW - timedelta(days=4))
    assert finder(db_url, engine).run_once().redelivered == []


def test_a_rate_limit_stops_the_look_until_github_says(
        db_url: str, engine: Engine, gh: GitHubStandIn, httpx_mock: HTTPXMock) -> None:
    gh.add_delivery(REPO_HOOK, "lost", 500, NOW - timedelta(hours=1))
    reset = int(time.time()) + 600  # from now: the module's NOW may be long past
    gh.fail("GET", "/deliveries", httpx.Response(403, json={
        "message": "API rate limit exceeded"}, headers={
        "x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)}))
    gaps = finder(db_url, engine)
    check = gaps.run_once()
    assert check.redelivered == [] and "403" in check.problems[0]
    calls = len(httpx_mock.get_requests())
    assert calls == 1  # the second hook is not tried while the limit lasts
    assert gaps.run_once().redelivered == [] and len(httpx_mock.get_requests()) == calls


def test_a_hook_the_token_cannot_see_is_reported_and_the_others_still_checked(
        db_url: str, engine: Engine, gh: GitHubStandIn) -> None:
    gh.add_delivery(ORG_HOOK, "lost", 500, NOW - timedelta(hours=1))
    check = finder(db_url, engine, "octo-org/private:999,octo-org:42").run_once()
    assert check.redelivered == ["lost"]
    assert "404" in check.problems[0] and "Webhooks: write" in check.problems[0]
    assert "gh-token" not in check.problems[0]


@pytest.mark.parametrize("value", ["octo-org/hello-world", "a/b/c:1", "org:x", "org:1;drop"])
def test_a_malformed_hook_list_is_refused_at_start_naming_the_entry(value: str) -> None:
    with pytest.raises(ValidationError, match="is not owner/repo:id or org:id"):
        Settings(github_hook_ids=f"octo-org:42, {value}")

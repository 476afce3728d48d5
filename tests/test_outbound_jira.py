"""Jira outbound, over real HTTP: the `jira` client talks to a local stand-in of Jira Cloud.

Each test checks the requests Jira's REST API v2 documents (method, path, query, JSON
body, Basic auth) and what the adapter reports: ok, retryable (with Retry-After) or
permanent, never an exception and never the API token.
"""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from pydantic import SecretStr

from adapters.base import OutboundAction, Result, Target
from adapters.jira import JiraOutbound, outbound
from router.settings import Settings
from tests.standin_jira import API, JiraStandin, Recorded, Reply

EMAIL = "firstline-bot@example.com"
TOKEN = "jira-api-token-do-not-leak"
AUTH = "Basic " + base64.b64encode(f"{EMAIL}:{TOKEN}".encode()).decode()
CTO = "557058:f58131cb-b67d-43c7-b30d-6b58d40bd077"
OWNER = "5b10ac8d82e05b22cc7d4ef5"
OTHER = "61e0c6a1b2c3d4e5f6a7b8c9"
ISSUE = f"{API}/issue/10042"
NOW = 1_790_000_000.0


@pytest.fixture
def jira() -> Iterator[JiraStandin]:
    with JiraStandin(email=EMAIL, token=TOKEN) as standin:
        yield standin


def settings(url: str, token: str | None = TOKEN) -> Settings:
    return Settings(jira_url=url, jira_email=EMAIL,
                    jira_api_token=SecretStr(token) if token else None)


def adapter(jira: JiraStandin, timeout: float = 5.0) -> JiraOutbound:
    return JiraOutbound(settings(jira.url), timeout=timeout, clock=lambda: NOW)


def action(type: str, action_id: int = 7, **fields: Any) -> OutboundAction:
    target = Target(source="jira", id="10042", key="OPS-7", kind="ticket", project="OPS")
    return OutboundAction(id=action_id, type=type, target=target, **fields)


def calls(jira: JiraStandin) -> list[tuple[str, str, dict[str, list[str]]]]:
    """Summarise the recorded requests as (method, path, query)."""
    return [(r.method, r.path, r.query) for r in jira.requests]


def assert_authenticated(requests: list[Recorded]) -> None:
    assert requests, "no request reached the stand-in"
    for request in requests:
        assert request.headers["authorization"] == AUTH
        assert request.headers["accept"].startswith("application/json")


# -- assign / unassign --------------------------------------------------------------------


def test_assign_replaces_the_cto_with_a_direct_put_by_account_id(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", assignee=CTO)
    result = adapter(jira).perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.status == "ok"
    assert calls(jira) == [("GET", ISSUE, {"fields": ["assignee"]}),
                           ("PUT", f"{ISSUE}/assignee", {})]
    assert jira.requests[1].json == {"accountId": OWNER}
    assert jira.requests[1].headers["content-type"] == "application/json"
    assert_authenticated(jira.requests)
    assert jira.issues["10042"].assignee == OWNER


def test_assign_an_unassigned_issue(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042")
    assert adapter(jira).perform(action("assign", account=OWNER)).ok
    assert [r.json for r in jira.writes()] == [{"accountId": OWNER}]


def test_assign_is_a_no_op_when_the_owner_already_has_it(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", assignee=OWNER)
    result = adapter(jira).perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.status == "ok" and "already" in result.detail
    assert jira.writes() == []


def test_assign_leaves_a_person_chosen_since_the_decision(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", assignee=OTHER)
    result = adapter(jira).perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.status == "ok" and "left alone" in result.detail
    assert jira.writes() == []
    assert jira.issues["10042"].assignee == OTHER


def test_unassign_clears_the_cto(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", assignee=CTO)
    assert adapter(jira).perform(action("unassign", remove=(CTO,))).ok
    assert calls(jira) == [("GET", ISSUE, {"fields": ["assignee"]}),
                           ("PUT", f"{ISSUE}/assignee", {})]
    assert jira.requests[1].json == {"accountId": None}
    assert jira.issues["10042"].assignee is None


def test_unassign_leaves_anyone_else(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", assignee=OTHER)
    assert adapter(jira).perform(action("unassign", remove=(CTO,))).ok
    assert jira.writes() == []


# -- comment --------------------------------------------------------------------------------


def test_comment_carries_an_invisible_property_with_the_action_id(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042")
    result = adapter(jira).perform(action("comment", text="firstline: first response is Sam."))
    assert result.status == "ok"
    assert calls(jira) == [
        ("GET", f"{ISSUE}/comment", {"startAt": ["0"], "maxResults": ["100"]}),
        ("POST", f"{ISSUE}/comment", {}),
    ]
    assert jira.requests[1].json == {
        "body": "firstline: first response is Sam.",
        "properties": [{"key": "firstline", "value": {"action": 7}}],
    }
    assert_authenticated(jira.requests)


def test_a_first_try_posts_without_looking_for_its_property(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042")
    assert adapter(jira).perform(action("comment", text="hello", first_try=True)).ok
    assert calls(jira) == [("POST", f"{ISSUE}/comment", {})]
    assert jira.requests[0].json["properties"] == [{"key": "firstline", "value": {"action": 7}}]


def test_a_retry_after_a_first_try_comments_once(jira: JiraStandin) -> None:
    issue = jira.add_issue("OPS-7", "10042")
    assert adapter(jira).perform(action("comment", text="once", first_try=True)).ok
    assert adapter(jira).perform(action("comment", text="once")).ok
    assert [c["body"] for c in issue.comments] == ["once"]


def test_comment_is_not_repeated_when_its_property_is_found(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", comments=[
        ("a person's comment", []),
        ("firstline: first response is Sam.", [{"key": "firstline", "value": {"action": 7}}]),
    ])
    result = adapter(jira).perform(action("comment", text="firstline: first response is Sam."))
    assert result.status == "ok" and "already" in result.detail
    assert calls(jira)[1] == ("POST", f"{API}/comment/list", {"expand": ["properties"]})
    assert jira.requests[1].json == {"ids": [10001, 10002]}
    assert jira.writes() == []


def test_another_actions_property_does_not_count(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", comments=[
        ("older", [{"key": "firstline", "value": {"action": 70}}]),
    ])
    assert adapter(jira).perform(action("comment", text="new")).ok
    assert [r.path for r in jira.writes()] == [f"{ISSUE}/comment"]


def test_comment_marker_is_found_past_the_first_page(jira: JiraStandin) -> None:
    comments: list[tuple[str, list[object]]] = [(f"comment {n}", []) for n in range(149)]
    comments.append(("firstline", [{"key": "firstline", "value": {"action": 7}}]))
    jira.add_issue("OPS-7", "10042", comments=comments)
    assert adapter(jira).perform(action("comment", text="firstline")).ok
    pages = [r.query["startAt"] for r in jira.requests if r.method == "GET"]
    lookups = [len(r.json["ids"]) for r in jira.requests if r.path == f"{API}/comment/list"]
    assert pages == [["0"], ["100"]] and lookups == [100, 50]
    assert jira.writes() == []


def test_a_short_lookup_page_is_followed_by_a_lookup_of_the_rest(jira: JiraStandin) -> None:
    comments: list[tuple[str, list[object]]] = [(f"comment {n}", []) for n in range(4)]
    comments.append(("firstline", [{"key": "firstline", "value": {"action": 7}}]))
    jira.add_issue("OPS-7", "10042", comments=comments)
    jira.lookup_page = 3
    assert adapter(jira).perform(action("comment", text="firstline")).ok
    lookups = [r.json["ids"] for r in jira.requests if r.path == f"{API}/comment/list"]
    assert lookups == [[10001, 10002, 10003, 10004, 10005], [10004, 10005]]
    assert jira.writes() == []


def test_a_retry_after_a_crash_comments_once(jira: JiraStandin) -> None:
    issue = jira.add_issue("OPS-7", "10042")
    first, second = adapter(jira), adapter(jira)  # a restarted worker has a new client
    assert first.perform(action("comment", text="once")).ok
    assert second.perform(action("comment", text="once")).ok
    assert [c["body"] for c in issue.comments] == ["once"]


# -- label ----------------------------------------------------------------------------------


def test_label_is_added_through_an_issue_update(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", labels=["bug"])
    assert adapter(jira).perform(action("label", label="next-cycle")).ok
    assert calls(jira) == [("GET", ISSUE, {"fields": ["labels"]}), ("PUT", ISSUE, {})]
    assert jira.requests[1].json == {"update": {"labels": [{"add": "next-cycle"}]}}
    assert jira.issues["10042"].labels == ["bug", "next-cycle"]
    assert_authenticated(jira.requests)


def test_label_already_there_is_not_added_again(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", labels=["Next-Cycle"])
    assert adapter(jira).perform(action("label", label="next-cycle")).ok
    assert jira.writes() == []


# -- what the adapter refuses -------------------------------------------------------------


def test_pages_are_not_a_jira_action(jira: JiraStandin) -> None:
    result = adapter(jira).perform(action("page", dedup_key="firstline/x"))
    assert result == Result("permanent", "page OPS-7: not a Jira action")
    assert jira.requests == []


def test_missing_credentials_are_permanent_and_send_nothing(jira: JiraStandin) -> None:
    result = outbound(settings(jira.url, token=None)).perform(action("assign", account=OWNER))
    assert result.status == "permanent"
    assert "FIRSTLINE_JIRA_API_TOKEN" in result.detail
    assert jira.requests == []


def test_building_the_adapter_touches_no_network(jira: JiraStandin) -> None:
    outbound(settings(jira.url))
    outbound(settings("http://127.0.0.1:1"))  # nothing listens there either
    assert jira.requests == []


# -- vendor trouble -----------------------------------------------------------------------


def test_429_is_retryable_with_retry_after_and_the_client_does_not_retry(
    jira: JiraStandin,
) -> None:
    jira.reply("GET", ISSUE, Reply(429, {"errorMessages": ["Rate limit exceeded."]},
                                   {"Retry-After": "7"}))
    result = adapter(jira).perform(action("assign", account=OWNER))
    assert result.status == "retryable" and result.retry_after == 7.0
    assert "Rate limit exceeded." in result.detail and "OPS-7" in result.detail
    assert len(jira.requests) == 1


def test_429_without_retry_after_uses_x_ratelimit_reset(jira: JiraStandin) -> None:
    reset = datetime.fromtimestamp(NOW + 120, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
    jira.reply("GET", ISSUE, Reply(429, None, {"X-RateLimit-Reset": reset}))
    result = adapter(jira).perform(action("assign", account=OWNER))
    assert result.status == "retryable"
    assert result.retry_after is not None and 60 < result.retry_after <= 120


def test_503_with_an_http_date_retry_after_is_retryable_once(jira: JiraStandin) -> None:
    when = format_datetime(datetime.fromtimestamp(NOW + 30, tz=UTC), usegmt=True)
    jira.reply("POST", f"{ISSUE}/comment", Reply(503, None, {"Retry-After": when}))
    jira.add_issue("OPS-7", "10042")
    result = adapter(jira).perform(action("comment", text="hello"))
    assert result.status == "retryable" and result.retry_after == 30.0
    assert len(jira.writes()) == 1


def test_500_is_retryable(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042")
    jira.reply("PUT", f"{ISSUE}/assignee", Reply(500, {"errorMessages": ["Internal error"]}))
    result = adapter(jira).perform(action("assign", account=OWNER))
    assert result.status == "retryable" and result.retry_after is None
    assert "500" in result.detail and "assign OPS-7" in result.detail
    assert len(jira.writes()) == 1


def test_recovers_when_jira_does(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042", assignee=CTO)
    jira.reply("PUT", f"{ISSUE}/assignee", Reply(503), Reply(204))
    act = adapter(jira)
    assert act.perform(action("assign", account=OWNER, remove=(CTO,))).status == "retryable"
    assert act.perform(action("assign", account=OWNER, remove=(CTO,))).ok
    assert [r.json for r in jira.writes()] == [{"accountId": OWNER}] * 2


def test_a_timeout_is_retryable(jira: JiraStandin) -> None:
    jira.reply("GET", ISSUE, Reply(200, {"fields": {"assignee": None}}, delay=1.0))
    result = adapter(jira, timeout=0.2).perform(action("assign", account=OWNER))
    assert result.status == "retryable" and "within 0.2s" in result.detail
    assert len(jira.requests) == 1


def test_connection_refused_is_retryable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    act = JiraOutbound(settings(f"http://127.0.0.1:{port}"), timeout=2.0)
    result = act.perform(action("assign", account=OWNER))
    assert result.status == "retryable" and "could not reach Jira" in result.detail


def test_400_names_the_action_the_issue_and_jiras_message(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042")
    message = f"User '{OWNER}' cannot be assigned issues."
    jira.reply("PUT", f"{ISSUE}/assignee",
               Reply(400, {"errorMessages": [], "errors": {"assignee": message}}))
    result = adapter(jira).perform(action("assign", account=OWNER))
    assert result.status == "permanent"
    assert result.detail == (f"assign OPS-7: Jira answered 400 to PUT {ISSUE}/assignee: "
                             f"{message}")


def test_404_is_permanent(jira: JiraStandin) -> None:
    result = adapter(jira).perform(action("label", label="next-cycle"))
    assert result.status == "permanent"
    assert "Issue does not exist" in result.detail and "label OPS-7" in result.detail


def test_a_redirected_write_is_not_taken_for_success(jira: JiraStandin) -> None:
    jira.add_issue("OPS-7", "10042")
    jira.reply("POST", f"{ISSUE}/comment",
               Reply(301, None, {"Location": f"https://jira.example.com{ISSUE}/comment"}))
    result = adapter(jira).perform(action("comment", text="x"))
    assert result.status == "permanent" and "redirected" in result.detail
    assert jira.issues["10042"].comments == []


def test_a_wrong_token_is_permanent_and_never_shown(jira: JiraStandin) -> None:
    wrong = JiraOutbound(settings(jira.url, token="wrong-token-value"), timeout=5.0)
    result = wrong.perform(action("assign", account=OWNER))
    assert result.status == "permanent" and "401" in result.detail
    assert "wrong-token-value" not in result.detail


def test_a_token_echoed_by_jira_is_scrubbed(jira: JiraStandin) -> None:
    jira.reply("GET", ISSUE, Reply(400, {"errorMessages": [f"bad credentials {TOKEN}"]}))
    result = adapter(jira).perform(action("assign", account=OWNER))
    assert result.status == "permanent"
    assert TOKEN not in result.detail and "***" in result.detail

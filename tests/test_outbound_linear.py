"""Linear's outbound side against pytest-httpx: the GraphQL operations it sends, the
variables they carry, and how every kind of vendor trouble is classified."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import orjson
import pytest
from pydantic import SecretStr
from pytest_httpx import HTTPXMock

from adapters.base import OutboundAction, Target
from adapters.linear import LinearOutbound, comment_id, outbound, retry_after
from router.settings import Settings

URL = "https://linear.test/graphql"
KEY = "lin_api_SECRETKEY0123456789abcdef"
ISSUE = "2c1e8f0a-4b1d-4c5e-9f3a-0d6b7e8f9a01"
TEAM = "7b7d2b0e-1f4a-4e0b-8c9d-5a6b7c8d9e0f"
CTO = "2e7b4c1c-cto"
OWNER = "8f1e0000-owner"
TARGET = Target(source="linear", id=ISSUE, key="ENG-42", kind="ticket", project="ENG",
                url="https://linear.app/acme/issue/ENG-42")


@pytest.fixture
def linear() -> LinearOutbound:
    return outbound(Settings(linear_api_url=URL, linear_api_key=SecretStr(KEY)))


def action(kind: str, **fields: Any) -> OutboundAction:
    return OutboundAction(id=12, type=kind, target=TARGET, **fields)


def reply(httpx_mock: HTTPXMock, data: Any = None, *, errors: Any = None, status: int = 200,
          headers: dict[str, str] | None = None) -> None:
    """Queue one GraphQL answer; answers are used in the order they were queued."""
    body: dict[str, Any] = {}
    if data is not None:
        body["data"] = data
    if errors is not None:
        body["errors"] = errors
    httpx_mock.add_response(url=URL, method="POST", status_code=status, json=body,
                            headers=headers)


def sent(httpx_mock: HTTPXMock) -> list[tuple[str, dict[str, Any]]]:
    """Return (operation name, variables) for every request, in order."""
    calls = []
    for request in httpx_mock.get_requests():
        body = orjson.loads(request.content)
        match = re.match(r"\s*(?:query|mutation) (\w+)", body["query"])
        assert match, body["query"]
        calls.append((match.group(1), body["variables"]))
    return calls


def issue(assignee: str | None = None, labels: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"issue": {
        "id": ISSUE, "assignee": {"id": assignee} if assignee else None,
        "team": {"id": TEAM, "key": "ENG"},
        "labels": {"nodes": [{"id": f"label-{n}", "name": n} for n in labels]},
    }}


def assigned(account: str | None) -> dict[str, Any]:
    return {"issueUpdate": {"success": True, "issue": {
        "id": ISSUE, "assignee": {"id": account} if account else None}}}


# -- assign / unassign --------------------------------------------------------------


def test_assign_replaces_the_cto_and_checks_the_answer(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(assignee=CTO))
    reply(httpx_mock, assigned(OWNER))
    result = linear.perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.ok, result
    assert sent(httpx_mock) == [("IssueState", {"id": ISSUE}),
                                ("SetAssignee", {"id": ISSUE, "assigneeId": OWNER})]
    request = httpx_mock.get_requests()[0]
    assert request.headers["Authorization"] == KEY  # a personal key goes bare, no Bearer
    assert str(request.url) == URL and request.method == "POST"
    assert request.extensions["timeout"] == dict.fromkeys(
        ("connect", "read", "write", "pool"), 10.0)


def test_assign_to_the_current_assignee_writes_nothing(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(assignee=OWNER))
    result = linear.perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.ok and "already" in result.detail
    assert [name for name, _ in sent(httpx_mock)] == ["IssueState"]


def test_assign_leaves_alone_a_person_assigned_since_the_decision(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(assignee="someone-a-person-chose"))
    result = linear.perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.ok and "left alone" in result.detail
    assert [name for name, _ in sent(httpx_mock)] == ["IssueState"]


def test_assign_not_reported_back_is_retried(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue())
    reply(httpx_mock, assigned("someone-else"))
    result = linear.perform(action("assign", account=OWNER))
    assert result.status == "retryable" and "ENG-42" in result.detail


def test_unassign_clears_the_cto(linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(assignee=CTO))
    reply(httpx_mock, assigned(None))
    result = linear.perform(action("unassign", remove=(CTO,)))
    assert result.ok, result
    assert sent(httpx_mock)[1] == ("SetAssignee", {"id": ISSUE, "assigneeId": None})


def test_unassign_leaves_anyone_else(linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(assignee=OWNER))
    assert linear.perform(action("unassign", remove=(CTO,))).ok
    assert [name for name, _ in sent(httpx_mock)] == ["IssueState"]


# -- comment ------------------------------------------------------------------------


def test_comment_is_created_with_the_action_s_own_id(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    wanted = comment_id(action("comment"))
    reply(httpx_mock, {"issue": {"comments": {"nodes": []}}})
    reply(httpx_mock, {"commentCreate": {"success": True, "comment": {"id": wanted}}})
    result = linear.perform(action("comment", text="Routed to Sam (Routine bug triage)."))
    assert result.ok, result
    assert sent(httpx_mock) == [
        ("FindComment", {"id": ISSUE, "commentId": wanted}),
        ("CreateComment", {"input": {"id": wanted, "issueId": ISSUE,
                                     "body": "Routed to Sam (Routine bug triage)."}}),
    ]


def test_a_first_try_creates_the_comment_without_looking_for_it(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    wanted = comment_id(action("comment"))
    reply(httpx_mock, {"commentCreate": {"success": True, "comment": {"id": wanted}}})
    assert linear.perform(action("comment", text="hello", first_try=True)).ok
    assert sent(httpx_mock) == [
        ("CreateComment", {"input": {"id": wanted, "issueId": ISSUE, "body": "hello"}})]


def test_comment_already_there_is_not_posted_again(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    wanted = comment_id(action("comment"))
    reply(httpx_mock, {"issue": {"comments": {"nodes": [{"id": wanted}]}}})
    assert linear.perform(action("comment", text="hello")).ok
    assert [name for name, _ in sent(httpx_mock)] == ["FindComment"]


def test_comment_id_is_a_stable_uuid4_per_action_and_issue() -> None:
    first = comment_id(action("comment"))
    assert uuid.UUID(first).version == 4
    assert comment_id(action("comment", text="other text")) == first
    assert comment_id(OutboundAction(id=13, type="comment", target=TARGET)) != first


# -- label --------------------------------------------------------------------------


def test_label_already_on_the_issue_writes_nothing(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(labels=("bug", "Next-Cycle")))
    assert linear.perform(action("label", label="next-cycle")).ok
    assert [name for name, _ in sent(httpx_mock)] == ["IssueState"]


def labelled(label_id: str) -> dict[str, Any]:
    return {"issueUpdate": {"success": True, "issue": {
        "id": ISSUE, "labels": {"nodes": [{"id": "label-bug", "name": "bug"},
                                          {"id": label_id, "name": "next-cycle"}]}}}}


def test_label_uses_the_team_s_existing_label(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(labels=("bug",)))
    reply(httpx_mock, {"team": {"labels": {"nodes": [{"id": "L1", "name": "next-cycle"}]}}})
    reply(httpx_mock, labelled("L1"))
    assert linear.perform(action("label", label="next-cycle")).ok
    assert sent(httpx_mock) == [
        ("IssueState", {"id": ISSUE}),
        ("TeamLabel", {"teamId": TEAM, "name": "next-cycle"}),
        ("AddLabel", {"id": ISSUE, "labelId": "L1"}),
    ]


def test_label_missing_on_the_team_is_created_once(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(labels=("bug",)))
    reply(httpx_mock, {"team": {"labels": {"nodes": []}}})
    reply(httpx_mock, {"issueLabelCreate": {"success": True,
                                            "issueLabel": {"id": "NEW", "name": "next-cycle"}}})
    reply(httpx_mock, labelled("NEW"))
    assert linear.perform(action("label", label="next-cycle")).ok
    calls = sent(httpx_mock)
    assert [name for name, _ in calls] == ["IssueState", "TeamLabel", "CreateLabel", "AddLabel"]
    assert calls[2][1] == {"input": {"name": "next-cycle", "teamId": TEAM}}
    assert calls[3][1] == {"id": ISSUE, "labelId": "NEW"}


def test_label_created_meanwhile_by_another_writer_is_used(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue())
    reply(httpx_mock, {"team": {"labels": {"nodes": []}}})
    reply(httpx_mock, errors=[{"message": "Label with this name already exists",
                               "extensions": {"code": "INVALID_INPUT"}}])
    reply(httpx_mock, {"team": {"labels": {"nodes": [{"id": "L2", "name": "next-cycle"}]}}})
    reply(httpx_mock, labelled("L2"))
    assert linear.perform(action("label", label="next-cycle")).ok
    assert [name for name, _ in sent(httpx_mock)] == [
        "IssueState", "TeamLabel", "CreateLabel", "TeamLabel", "AddLabel"]


# -- failures -----------------------------------------------------------------------


def test_graphql_errors_in_a_200_are_permanent(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, issue(assignee=CTO))
    reply(httpx_mock, errors=[{"message": "Argument Validation Error",
                               "extensions": {"code": "INVALID_INPUT"}}],
          data={"issueUpdate": None})
    result = linear.perform(action("assign", account=OWNER, remove=(CTO,)))
    assert result.status == "permanent"
    assert result.detail == "linear: assign ENG-42: GraphQL error: Argument Validation Error"


@pytest.mark.parametrize("status", [200, 400])
def test_ratelimited_is_retryable_with_linear_s_reset_time(
        linear: LinearOutbound, httpx_mock: HTTPXMock, status: int) -> None:
    reset = int((time.time() + 30) * 1000)  # Linear's reset header: epoch milliseconds
    reply(httpx_mock, errors=[{"message": "Rate limit exceeded",
                               "extensions": {"code": "RATELIMITED"}}],
          status=status, headers={"X-RateLimit-Requests-Reset": str(reset)})
    result = linear.perform(action("assign", account=OWNER))
    assert result.status == "retryable" and "Rate limit exceeded" in result.detail
    assert result.retry_after is not None and 25 < result.retry_after <= 30
    assert len(httpx_mock.get_requests()) == 1


def test_429_honours_retry_after_and_sends_one_request(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    reply(httpx_mock, status=429, headers={"Retry-After": "7"})
    result = linear.perform(action("comment", text="hi"))
    assert result.status == "retryable" and result.retry_after == 7.0
    assert len(httpx_mock.get_requests()) == 1


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(
        linear: LinearOutbound, httpx_mock: HTTPXMock, status: int) -> None:
    reply(httpx_mock, status=status)
    result = linear.perform(action("assign", account=OWNER))
    assert result.status == "retryable" and f"HTTP {status}" in result.detail
    assert result.retry_after is None


@pytest.mark.parametrize("error", [httpx.ReadTimeout("slow"), httpx.ConnectTimeout("slow"),
                                   httpx.ConnectError("Connection refused")])
def test_timeouts_and_refused_connections_are_retryable(
        linear: LinearOutbound, httpx_mock: HTTPXMock, error: Exception) -> None:
    httpx_mock.add_exception(error, url=URL)
    result = linear.perform(action("assign", account=OWNER))
    assert result.status == "retryable" and result.detail.startswith("linear: assign ENG-42: ")


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_permanent_and_never_show_the_key(
        linear: LinearOutbound, httpx_mock: HTTPXMock, status: int) -> None:
    reply(httpx_mock, status=status,
          errors=[{"message": f"Authentication failed for key {KEY}",
                   "extensions": {"code": "AUTHENTICATION_ERROR"}}])
    result = linear.perform(action("label", label="next-cycle"))
    assert result.status == "permanent"
    assert result.detail.startswith(f"linear: label ENG-42: HTTP {status}: Authentication failed")
    assert KEY not in result.detail and "***" in result.detail


def test_a_body_that_is_not_json_is_described_without_crashing(
        linear: LinearOutbound, httpx_mock: HTTPXMock) -> None:
    httpx_mock.add_response(url=URL, status_code=404, text="no such route")
    result = linear.perform(action("assign", account=OWNER))
    assert result.status == "permanent" and result.detail.endswith("HTTP 404: no such route")


def test_other_actions_and_a_missing_key_are_permanent_without_a_request(
        httpx_mock: HTTPXMock) -> None:
    configured = outbound(Settings(linear_api_url=URL, linear_api_key=SecretStr(KEY)))
    assert configured.perform(action("page", dedup_key="firstline/x")).status == "permanent"
    keyless = outbound(Settings(linear_api_url=URL))
    result = keyless.perform(action("assign", account=OWNER))
    assert result.status == "permanent" and "FIRSTLINE_LINEAR_API_KEY" in result.detail
    assert httpx_mock.get_requests() == []


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after({"retry-after": "120"}) == 120.0
    assert retry_after({"retry-after": "-3"}) == 0.0
    assert retry_after({}) is None and retry_after({"retry-after": "soon"}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=90), usegmt=True)
    waited = retry_after(httpx.Headers({"Retry-After": later}))
    assert waited is not None and 85 < waited <= 90

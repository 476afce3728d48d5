"""PagerDuty's outbound side through the `pagerduty` clients and an httpx2 stand-in:
the Events API and REST API requests it makes, and how vendor trouble is classified."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx2
import pytest
from pydantic import SecretStr

from adapters.base import OutboundAction, Target
from adapters.pagerduty import PagerDutyOutbound, outbound
from router.settings import Settings
from tests.standin_pagerduty import PagerDutyStandIn

EVENTS = "https://events.pd.test"
API = "https://api.pd.test"
ROUTING = "R0UTINGKEY0123456789abcdef012345"
TOKEN = "y_NbAkKc66ryYTWUXYEu"
FROM = "firstline@example.com"
CTO, OWNER, OTHER = "PXPGF42", "P7XKQ2M", "PL9ZT1A"
INCIDENT = Target(source="pagerduty", id="Q1ABCDEF", key="Q1ABCDEF", kind="incident",
                  project="Checkout", url="https://acme.pagerduty.com/incidents/Q1ABCDEF")
TICKET = Target(source="jira", id="10042", key="OPS-7", kind="ticket", project="OPS",
                url="https://acme.atlassian.net/browse/OPS-7")
DEDUP = "firstline/revenue-path/jira/10042"
ACCEPTED = {"status": "success", "message": "Event processed", "dedup_key": DEDUP}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        pagerduty_events_url=EVENTS, pagerduty_api_url=API,
        pagerduty_routing_key=SecretStr(ROUTING), pagerduty_api_token=SecretStr(TOKEN),
        pagerduty_from=FROM)
    return Settings(**{**values, **overrides})


@pytest.fixture
def pd() -> PagerDutyStandIn:
    return PagerDutyStandIn()


@pytest.fixture
def adapter(pd: PagerDutyStandIn) -> PagerDutyOutbound:
    return outbound(settings(), transport=pd.transport)


def page(severity: str = "sev2") -> OutboundAction:
    return OutboundAction(id=12, type="page", target=TICKET, dedup_key=DEDUP,
                          text="Payments down on OPS-7", severity=severity,
                          link="https://firstline.example/decisions/7")


def incident_action(kind: str, **fields: Any) -> OutboundAction:
    return OutboundAction(id=12, type=kind, target=INCIDENT, **fields)


def incident(*assignees: str) -> dict[str, Any]:
    return {"incident": {"id": INCIDENT.id, "type": "incident", "assignments": [
        {"assignee": {"id": user, "type": "user_reference"}} for user in assignees]}}


# -- Events API v2 ------------------------------------------------------------------


def test_page_triggers_one_alert_with_the_dedup_key(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("POST", "/v2/enqueue", 202, ACCEPTED)
    result = adapter.perform(page())
    assert result.ok, result
    [seen] = pd.requests
    assert seen.method == "POST" and seen.path == "/v2/enqueue"
    assert seen.body == {
        "routing_key": ROUTING, "event_action": "trigger", "dedup_key": DEDUP,
        "payload": {"summary": "Payments down on OPS-7", "source": "firstline",
                    "severity": "error",
                    "custom_details": {"item": "OPS-7", "source": "jira",
                                       "url": "https://acme.atlassian.net/browse/OPS-7"}},
        "links": [{"href": "https://firstline.example/decisions/7", "text": "firstline decision"},
                  {"href": "https://acme.atlassian.net/browse/OPS-7", "text": "OPS-7"}],
    }
    assert seen.timeout == dict.fromkeys(("connect", "read", "write", "pool"), 10)


@pytest.mark.parametrize(("severity", "expected"), [
    ("sev1", "critical"), ("sev2", "error"), ("sev3", "warning"), ("sev4", "info")])
def test_page_maps_severity(adapter: PagerDutyOutbound, pd: PagerDutyStandIn,
                            severity: str, expected: str) -> None:
    pd.answer("POST", "/v2/enqueue", 202, ACCEPTED)
    assert adapter.perform(page(severity)).ok
    assert pd.requests[0].body["payload"]["severity"] == expected


def test_resolve_page_resolves_by_dedup_key(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("POST", "/v2/enqueue", 202, ACCEPTED)
    action = OutboundAction(id=13, type="resolve_page", target=TICKET, dedup_key=DEDUP)
    assert adapter.perform(action).ok
    assert pd.requests[0].body == {"routing_key": ROUTING, "event_action": "resolve",
                                   "dedup_key": DEDUP}


def test_a_page_without_a_dedup_key_is_refused_before_sending(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    result = adapter.perform(OutboundAction(id=12, type="page", target=TICKET, text="x"))
    assert result.status == "permanent" and "dedup_key" in result.detail
    assert pd.requests == []


# -- REST API v2 --------------------------------------------------------------------


def test_reassign_puts_the_owner_in_place_of_the_cto(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF", 200, incident(CTO))
    pd.answer("PUT", "/incidents/Q1ABCDEF", 200, incident(OWNER))
    result = adapter.perform(incident_action("reassign_incident", account=OWNER, remove=(CTO,)))
    assert result.ok, result
    get, put = pd.requests
    assert (get.method, put.method) == ("GET", "PUT")
    assert put.body == {"incident": {"type": "incident_reference", "assignments": [
        {"assignee": {"id": OWNER, "type": "user_reference"}}]}}
    for seen in (get, put):
        assert seen.headers["Authorization"] == f"Token token={TOKEN}"
        assert seen.headers["From"] == FROM
        assert seen.headers["Accept"] == "application/vnd.pagerduty+json;version=2"


def test_reassign_when_already_done_writes_nothing(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF", 200, incident(OWNER))
    assert adapter.perform(incident_action("reassign_incident", account=OWNER,
                                           remove=(CTO,))).ok
    assert [seen.method for seen in pd.requests] == ["GET"]


def test_reassign_keeps_other_responders(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF", 200, incident(CTO, OTHER))
    pd.answer("PUT", "/incidents/Q1ABCDEF", 200, incident(OWNER, OTHER))
    assert adapter.perform(incident_action("reassign_incident", account=OWNER,
                                           remove=(CTO,))).ok
    assignees = [a["assignee"]["id"] for a in pd.requests[1].body["incident"]["assignments"]]
    assert assignees == [OWNER, OTHER]


def test_reassign_not_reported_back_is_retried(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF", 200, incident(CTO))
    pd.answer("PUT", "/incidents/Q1ABCDEF", 200, incident(CTO))
    result = adapter.perform(incident_action("reassign_incident", account=OWNER, remove=(CTO,)))
    assert result.status == "retryable"


def test_note_carries_a_short_trailing_marker(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF/notes", 200,
              {"notes": [{"id": "N1", "content": "earlier [firstline:action:1]"}]})
    pd.answer("POST", "/incidents/Q1ABCDEF/notes", 201, {"note": {"id": "N2"}})
    result = adapter.perform(incident_action("note", text="Waits for next week."))
    assert result.ok, result
    assert pd.requests[1].body == {
        "note": {"content": "Waits for next week.\n\n[firstline:action:12]"}}
    assert pd.requests[1].headers["From"] == FROM


def test_a_first_try_adds_the_note_without_looking_for_it(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("POST", "/incidents/Q1ABCDEF/notes", 201, {"note": {"id": "N2"}})
    assert adapter.perform(incident_action("note", text="Waits.", first_try=True)).ok
    assert [(seen.method, seen.path) for seen in pd.requests] == [
        ("POST", "/incidents/Q1ABCDEF/notes")]


def test_note_already_there_is_not_added_again(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF/notes", 200,
              {"notes": [{"id": "N2", "content": "Waits.\n\n[firstline:action:12]"}]})
    assert adapter.perform(incident_action("note", text="Waits.")).ok
    assert [seen.method for seen in pd.requests] == ["GET"]


@pytest.mark.parametrize("kind", ["assign", "unassign", "comment", "label"])
def test_tracker_actions_are_not_pagerduty_actions(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn, kind: str) -> None:
    result = adapter.perform(incident_action(kind, account=OWNER, text="x", label="x"))
    assert result.status == "permanent" and "not a PagerDuty action" in result.detail
    assert pd.requests == []


# -- failures -----------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "action"), [
    ("POST", "/v2/enqueue", page()),
    ("GET", "/incidents/Q1ABCDEF", incident_action("reassign_incident", account=OWNER)),
])
def test_429_honours_retry_after_and_the_client_does_not_retry(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn,
        method: str, path: str, action: OutboundAction) -> None:
    pd.answer(method, path, 429, {"error": {"message": "Rate Limit Exceeded"}},
              {"Retry-After": "7"})
    result = adapter.perform(action)
    assert result.status == "retryable" and result.retry_after == 7.0
    assert "Rate Limit Exceeded" in result.detail
    assert len(pd.requests) == 1


def test_a_rest_429_is_waited_out_for_its_ratelimit_reset(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn) -> None:
    """PagerDuty's REST API names its wait in `ratelimit-reset` (seconds until the limit
    resets), not in Retry-After: a retry sooner is refused again."""
    pd.answer("GET", "/incidents/Q1ABCDEF", 429, {"error": {"message": "Rate Limit Exceeded"}},
              {"ratelimit-limit": "960", "ratelimit-remaining": "0", "ratelimit-reset": "42"})
    result = adapter.perform(incident_action("reassign_incident", account=OWNER))
    assert result.status == "retryable" and result.retry_after == 42.0
    assert len(pd.requests) == 1


def test_retry_after_may_be_an_http_date(adapter: PagerDutyOutbound,
                                         pd: PagerDutyStandIn) -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    pd.answer("POST", "/v2/enqueue", 429, None, {"Retry-After": later})
    result = adapter.perform(page())
    assert result.status == "retryable"
    assert result.retry_after is not None and 55 < result.retry_after <= 60


@pytest.mark.parametrize("status", [500, 502, 503, 504])
@pytest.mark.parametrize(("method", "path", "action"), [
    ("POST", "/v2/enqueue", page()),
    ("GET", "/incidents/Q1ABCDEF/notes", incident_action("note", text="x")),
])
def test_server_errors_are_retryable_after_one_request(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn, status: int,
        method: str, path: str, action: OutboundAction) -> None:
    pd.answer(method, path, status, {"error": {"message": "Service Unavailable"}})
    result = adapter.perform(action)
    assert result.status == "retryable" and f"HTTP {status}" in result.detail
    assert len(pd.requests) == 1


@pytest.mark.parametrize("error", [httpx2.ReadTimeout, httpx2.ConnectTimeout,
                                   httpx2.ConnectError])
def test_timeouts_and_refused_connections_are_retryable_after_one_request(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn, error: type[Exception]) -> None:
    pd.fail("POST", "/v2/enqueue", error)
    result = adapter.perform(page())
    assert result.status == "retryable" and result.detail.startswith("pagerduty: page OPS-7: ")
    assert len(pd.requests) == 1


def test_a_refused_tls_port_is_retryable() -> None:
    refused = outbound(settings(pagerduty_events_url="https://127.0.0.1:1"))
    result = refused.perform(page())
    assert result.status == "retryable" and "could not reach PagerDuty" in result.detail


@pytest.mark.parametrize(("status", "body", "message"), [
    (400, {"status": "invalid event", "message": "Event object is invalid",
           "errors": ["'payload.summary' is missing"]},
     "Event object is invalid; 'payload.summary' is missing"),
    (401, {"error": {"message": f"Unauthorized: {ROUTING}", "code": 2006}},
     "Unauthorized: ***"),
    (404, {"error": {"message": "Not Found", "code": 2100}}, "Not Found"),
])
def test_client_errors_on_events_are_permanent_and_hide_the_routing_key(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn,
        status: int, body: Any, message: str) -> None:
    pd.answer("POST", "/v2/enqueue", status, body)
    result = adapter.perform(page())
    assert result.status == "permanent"
    assert result.detail == f"pagerduty: page OPS-7: HTTP {status}: {message}"
    assert ROUTING not in result.detail


@pytest.mark.parametrize(("status", "body"), [
    (400, {"error": {"message": "Invalid Input Provided", "code": 2001,
                     "errors": ["Assignee is not valid"]}}),
    (401, {"error": {"message": f"Invalid token {TOKEN}", "code": 2006}}),
    (404, {"error": {"message": "Not Found", "code": 2100}}),
])
def test_client_errors_on_rest_are_permanent_and_hide_the_token(
        adapter: PagerDutyOutbound, pd: PagerDutyStandIn, status: int, body: Any) -> None:
    pd.answer("GET", "/incidents/Q1ABCDEF", 200, incident(CTO))
    pd.answer("PUT", "/incidents/Q1ABCDEF", status, body)
    result = adapter.perform(incident_action("reassign_incident", account=OWNER, remove=(CTO,)))
    assert result.status == "permanent"
    assert result.detail.startswith(f"pagerduty: reassign_incident Q1ABCDEF: HTTP {status}: ")
    assert TOKEN not in result.detail and ROUTING not in result.detail


def test_writes_need_the_from_address(pd: PagerDutyStandIn) -> None:
    adapter = outbound(settings(pagerduty_from=None), transport=pd.transport)
    pd.answer("GET", "/incidents/Q1ABCDEF/notes", 200, {"notes": []})
    result = adapter.perform(incident_action("note", text="x"))
    assert result.status == "permanent" and "FIRSTLINE_PAGERDUTY_FROM" in result.detail
    assert [seen.method for seen in pd.requests] == ["GET"]


@pytest.mark.parametrize(("overrides", "expected"), [
    ({"pagerduty_routing_key": None}, "FIRSTLINE_PAGERDUTY_ROUTING_KEY is not set"),
    ({"pagerduty_events_url": "http://events.pd.test"}, "must use scheme https://"),
])
def test_misconfiguration_is_permanent_without_a_request(
        pd: PagerDutyStandIn, overrides: dict[str, Any], expected: str) -> None:
    adapter = outbound(settings(**overrides), transport=pd.transport)
    result = adapter.perform(page())
    assert result.status == "permanent" and expected in result.detail
    assert pd.requests == []


def test_building_the_adapter_sends_nothing(pd: PagerDutyStandIn) -> None:
    outbound(settings(), transport=pd.transport)
    assert pd.requests == []

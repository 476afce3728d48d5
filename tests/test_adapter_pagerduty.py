"""PagerDuty v3 inbound adapter: every real fixture, the SPEC §3 mappings, signatures.

Fixtures under tests/fixtures/vendor/pagerduty are unmodified copies (zulip recordings,
PagerDuty's docs and go-pagerduty's test body; see SOURCES.md); variants are made by
loading one and changing fields here, never by editing the files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import pagerduty
from adapters.base import SignatureError, VerifyContext
from router.core.model import Event, ItemRef, PayloadError, WorkItem

VENDOR = Path(__file__).parent / "fixtures" / "vendor"
PAGERDUTY = VENDOR / "pagerduty"
FIXTURES = sorted(path.name for path in PAGERDUTY.glob("*.json"))

# The published vector (PagerDuty/go-pagerduty, webhookv3/webhookv3_test.go).
SIGNED_BODY = (PAGERDUTY / "incident.priority_updated.signed.json").read_bytes()
VECTOR_SECRET = b"lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
VECTOR_SIGNATURE = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
NON_MATCHING = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5"

PIG_SERVICE = ("pig208", "PA2P440", "pig208")  # name, id, account host
HARSH_SERVICE = ("Default Service", "PLVTM9H", "harsh0303")
ACME_SERVICE = ("API Service", "PF9KMXH", "acme")
HARSH_KEY = "d387d7bd2e0a4294a5307339dfe1669a"


def at(text: str) -> datetime:
    """Parse a fixture's timestamp as an aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def load(name: str, vendor: str = "pagerduty") -> Any:
    """Load a fresh copy of a fixture, so a test may change it freely."""
    return json.loads((VENDOR / vendor / name).read_text())


def item_of(event: Event) -> WorkItem:
    """Return the event's item, failing the test when it has none."""
    assert event.item is not None
    return event.item


def ctx(*secrets: bytes) -> VerifyContext:
    return VerifyContext(secrets=secrets, now=0.0)


# --- every fixture -----------------------------------------------------------------------


@dataclass(frozen=True)
class Expected:
    """What one incident fixture must parse to (values read off the file)."""

    id: str
    title: str
    service: tuple[str, str, str]
    occurred: str
    summary: str
    status: str = "open"
    priority: str | None = None
    severity: str = "sev2"  # urgency high, no priority
    assignees: tuple[str, ...] = ()
    actor: str = "PJ0LVEB"
    created: str | None = None
    reopened: str | None = None
    incident_key: str | None = None
    assigned: tuple[str, ...] = ()


def harsh(occurred: str, summary: str, priority: str = "P1", severity: str = "sev1") -> Expected:
    """Expect one of the 2026 recordings of incident Q3B15VLMF3ASBD."""
    return Expected(
        id="Q3B15VLMF3ASBD",
        title="Critical: Checkout API High Latency",
        service=HARSH_SERVICE,
        occurred=occurred,
        summary=summary,
        priority=priority,
        severity=severity,
        assignees=("PXRUEF2",),
        actor="PXRUEF2",
        created="2026-04-01T02:07:30",
        incident_key=HARSH_KEY,
    )


INCIDENTS: dict[str, Expected] = {
    "incident.triggered.json": Expected(
        id="PFQZPSY",
        title="Test Incident 3",
        service=PIG_SERVICE,
        occurred="2021-06-04T13:35:29.781",
        summary="triggered",
        assignees=("PJ0LVEB",),
        assigned=("PJ0LVEB",),
    ),
    "incident.acknowledged.json": Expected(
        id="PQ1K5C8",
        title="Test Incident",
        service=PIG_SERVICE,
        occurred="2021-06-04T13:55:30.394",
        summary="acknowledged by PIG 208",
        status="acknowledged",
        assignees=("PJ0LVEB",),
    ),
    "incident.unacknowledged.json": Expected(
        id="PQ1K5C8",
        title="Test Incident",
        service=PIG_SERVICE,
        occurred="2021-06-04T13:54:23.185",
        summary="unacknowledged",
        assignees=("PJ0LVEB",),
    ),
    "incident.resolved.json": Expected(
        id="PCPZE64",
        title="Test Incident",
        service=PIG_SERVICE,
        occurred="2021-06-04T13:16:53.816",
        summary="resolved",
        status="resolved",
    ),
    "incident.reassigned.json": Expected(
        id="PIQUG8X",
        title="Test Incident",
        service=PIG_SERVICE,
        occurred="2021-06-04T10:17:54.838",
        summary="reassigned to Test User",
        assignees=("PI9DT01",),
        assigned=("PI9DT01",),
    ),
    "incident.escalated.json": harsh("2026-04-01T02:08:04.642", "escalated to Harsh Santwani"),
    "incident.priority_updated.json": harsh(
        "2026-04-01T02:15:36.315", "priority P2", priority="P2", severity="sev2"
    ),
    "incident.delegated.json": harsh("2026-04-01T02:13:20.295", "delegated to APIs-ep"),
    "incident.priority_updated.docs-example.json": Expected(
        id="PGR0VU2",
        title="A little bump in the road",
        service=ACME_SERVICE,
        occurred="2020-10-02T18:45:22.169",
        summary="priority P1",
        priority="P1",
        severity="sev1",
        assignees=("PTUXL6G",),
        actor="PLH1HKV",
        created="2020-04-09T15:16:27",
        reopened="2020-10-02T18:45:22",
        incident_key="d3640fbd41094207a1c11e58e46b1662",
    ),
    "incident.priority_updated.signed.json": Expected(
        id="PGR0VU2",
        title="A little bump in the road",
        service=ACME_SERVICE,
        occurred="2021-04-26T17:36:27.458",
        summary="priority P1",
        priority="P1",
        severity="sev1",
        assignees=("PTUXL6G",),
        actor="PLH1HKV",
    ),
}


@pytest.mark.parametrize("name", sorted(INCIDENTS))
def test_incident_fixtures_parse(name: str) -> None:
    want = INCIDENTS[name]
    service, service_id, host = want.service
    event = pagerduty.parse(load(name), None)
    assert (event.source, event.event_type) == ("pagerduty", ".".join(name.split(".")[:2]))
    assert (event.actor, event.occurred_at) == (want.actor, at(want.occurred))
    assert event.summary == want.summary
    assert (event.assigned, event.unassigned, event.deleted) == (want.assigned, (), False)
    assert (event.ref, event.ignore_reason) == (None, None)
    assert item_of(event) == WorkItem(
        source="pagerduty",
        id=want.id,
        key=want.id,
        url=f"https://{host}.pagerduty.com/incidents/{want.id}",
        kind="incident",
        project=service,
        title=want.title,
        description="",
        labels=frozenset(),
        priority=want.priority,
        default_severity=want.severity,  # type: ignore[arg-type]
        status=want.status,  # type: ignore[arg-type]
        assignees=want.assignees,
        reporter=None,
        # Older payloads have no created_at: the event's own time stands in (SPEC §3).
        created_at=at(want.created or want.occurred),
        updated_at=at(want.occurred),
        project_aliases=frozenset({service_id.lower()}),
        reopened_at=at(want.reopened) if want.reopened else None,
        incident_key=want.incident_key,
        service_id=service_id,
    )


def test_annotated_fixture_names_its_incident_only() -> None:
    event = pagerduty.parse(load("incident.annotated.json"), None)
    assert event.item is None
    assert event.ref == ItemRef(source="pagerduty", id="Q3B15VLMF3ASBD", key="Q3B15VLMF3ASBD")
    assert event.ignore_reason == (
        "a PagerDuty incident.annotated event carries incident_note data, not the incident's state"
    )
    assert (event.event_type, event.actor, event.summary) == (
        "incident.annotated",
        "PXRUEF2",
        "note added",
    )
    assert event.occurred_at == at("2026-04-01T02:18:59.674")


def test_all_fixtures_are_covered() -> None:
    assert set(INCIDENTS) | {"incident.annotated.json"} == set(FIXTURES)


@pytest.mark.parametrize("name", FIXTURES)
def test_event_type_header_is_not_needed(name: str) -> None:
    payload = load(name)
    assert pagerduty.parse(payload, None) == pagerduty.parse(payload, "anything")


# --- SPEC §3 mappings, as variants of real fixtures -------------------------------------


def triggered_with(**data: Any) -> Any:
    """Return incident.triggered.json with some `event.data` fields replaced."""
    payload = load("incident.triggered.json")
    payload["event"]["data"].update(data)
    return payload


def priority(name: str) -> dict[str, str]:
    return {"id": "PXXXXXX", "type": "priority_reference", "summary": name}


@pytest.mark.parametrize(
    ("prio", "urgency", "severity"),
    [
        ("P1", "low", "sev1"),
        ("P2", "low", "sev2"),
        ("P3", "high", "sev3"),
        ("P4", "high", "sev4"),
        ("P5", "high", "sev4"),
        ("p2", "low", "sev2"),  # names compare case-insensitively
        (None, "high", "sev2"),  # without a priority, urgency decides
        (None, "low", "sev4"),
        ("SEV-A", "high", "sev2"),  # a priority outside P1..P5 falls back to urgency
        (None, None, "sev4"),
        (None, "medium", "sev4"),
    ],
)
def test_default_severity(prio: str | None, urgency: str | None, severity: str) -> None:
    payload = triggered_with(priority=priority(prio) if prio else None, urgency=urgency)
    item = item_of(pagerduty.parse(payload, None))
    assert (item.priority, item.default_severity) == (prio, severity)


def test_missing_priority_and_urgency_fields() -> None:
    payload = load("incident.triggered.json")
    del payload["event"]["data"]["priority"], payload["event"]["data"]["urgency"]
    item = item_of(pagerduty.parse(payload, None))
    assert (item.priority, item.default_severity) == (None, "sev4")


@pytest.mark.parametrize(
    ("raw", "status"),
    [("triggered", "open"), ("acknowledged", "acknowledged"), ("resolved", "resolved")],
)
def test_status(raw: str, status: str) -> None:
    assert item_of(pagerduty.parse(triggered_with(status=raw), None)).status == status


def test_unknown_status_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="status"):
        pagerduty.parse(triggered_with(status="snoozed"), None)


def test_created_and_reopened_times_are_read_when_present() -> None:
    payload = triggered_with(
        created_at="2021-06-04T13:30:00Z", reopened_at="2021-06-04T13:34:00+00:00"
    )
    item = item_of(pagerduty.parse(payload, None))
    assert item.created_at == at("2021-06-04T13:30:00")
    assert item.reopened_at == at("2021-06-04T13:34:00")
    assert item.updated_at == at("2021-06-04T13:35:29.781")


def test_firstline_page_fields_are_reported() -> None:
    payload = triggered_with(
        incident_key="firstline/revenue-path/ENG-42",
        service={"id": "PCTO001", "type": "service_reference", "summary": "CTO paging"},
    )
    item = item_of(pagerduty.parse(payload, None))
    assert (item.incident_key, item.service_id) == ("firstline/revenue-path/ENG-42", "PCTO001")
    assert (item.project, item.project_aliases) == ("CTO paging", frozenset({"pcto001"}))


def test_missing_service_leaves_project_empty() -> None:
    payload = load("incident.triggered.json")
    del payload["event"]["data"]["service"]
    item = item_of(pagerduty.parse(payload, None))
    assert (item.project, item.project_aliases, item.service_id) == (None, frozenset(), None)


@pytest.mark.parametrize(
    ("data", "description"),
    [
        ({"description": "db down"}, "db down"),
        ({"body": {"type": "incident_body", "details": "disk full"}}, "disk full"),
        ({"body": None}, ""),
    ],
)
def test_description_when_present(data: dict[str, Any], description: str) -> None:
    assert item_of(pagerduty.parse(triggered_with(**data), None)).description == description


def test_null_agent_gives_no_actor() -> None:
    payload = load("incident.triggered.json")
    payload["event"]["agent"] = None
    event = pagerduty.parse(payload, None)
    assert event.actor is None
    assert pagerduty.parse(load("incident.acknowledged.json"), None).actor == "PJ0LVEB"


def test_acknowledged_summary_without_agent_name() -> None:
    payload = load("incident.acknowledged.json")
    del payload["event"]["agent"]["summary"]
    assert pagerduty.parse(payload, None).summary == "acknowledged by PJ0LVEB"


@pytest.mark.parametrize(
    ("event_type", "data", "ref", "summary"),
    [
        (
            "incident.status_update_published",
            {
                "id": "PSTATUS",
                "type": "incident_status_update",
                "incident": {"id": "PFQZPSY", "type": "incident_reference"},
            },
            ItemRef(source="pagerduty", id="PFQZPSY", key="PFQZPSY"),
            "status update published",
        ),
        (
            "incident.responder.added",
            {
                "incident": {"id": "PFQZPSY", "type": "incident_reference"},
                "type": "incident_responder",
            },
            ItemRef(source="pagerduty", id="PFQZPSY", key="PFQZPSY"),
            "responder.added",
        ),
        (
            "pagey.ping",
            {"message": "Hello from your friend Pagey!", "type": "ping"},
            None,
            "pagey.ping",
        ),
        ("service.updated", {"id": "PA2P440", "type": "service"}, None, "service.updated"),
    ],
)
def test_non_incident_data_is_ignored(
    event_type: str, data: dict[str, Any], ref: ItemRef | None, summary: str
) -> None:
    payload = load("incident.annotated.json")
    payload["event"].update(event_type=event_type, data=data)
    event = pagerduty.parse(payload, None)
    assert (event.item, event.ref, event.summary) == (None, ref, summary)
    assert event.ignore_reason is not None and event_type in event.ignore_reason


# --- garbage ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({}, id="empty-object"),
        pytest.param([], id="list"),
        pytest.param("event", id="string"),
        pytest.param(None, id="null"),
        pytest.param({"event": []}, id="event-list"),
        pytest.param({"event": {"event_type": "incident.triggered"}}, id="no-data"),
        pytest.param({"event": {"data": {"type": "incident"}}}, id="no-event-type"),
        pytest.param({"messages": [{"event": "incident.trigger"}]}, id="v2-webhook"),
        pytest.param(load("issue_created.json", "jira"), id="jira"),
        pytest.param(load("Issue.create.json", "linear"), id="linear"),
        pytest.param(load("issues.opened.json", "github"), id="github"),
    ],
)
def test_non_pagerduty_payloads_are_payload_errors(payload: Any) -> None:
    with pytest.raises(PayloadError):
        pagerduty.parse(payload, None)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda e: e.pop("occurred_at"), "occurred_at"),
        (lambda e: e.update(occurred_at="soon"), "occurred_at"),
        (lambda e: e["data"].pop("id"), "data.id"),
        (lambda e: e["data"].update(id=7), "data.id"),
        (lambda e: e["data"].update(created_at="yesterday"), "created_at"),
        (lambda e: e["data"].update(reopened_at=[]), "reopened_at"),
        (lambda e: e["data"].pop("status"), "status"),
    ],
)
def test_broken_incident_payloads_are_payload_errors(change: Any, message: str) -> None:
    payload = load("incident.triggered.json")
    change(payload["event"])
    with pytest.raises(PayloadError, match=message):
        pagerduty.parse(payload, None)


# --- signatures and delivery ids --------------------------------------------------------


def sign(secret: bytes, body: bytes) -> str:
    return "v1=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def headers(value: str) -> dict[str, str]:
    return {"x-pagerduty-signature": value}


def test_published_vector_verifies() -> None:
    assert len(SIGNED_BODY) == 1655
    assert sign(VECTOR_SECRET, SIGNED_BODY) == VECTOR_SIGNATURE
    pagerduty.verify(SIGNED_BODY, headers(VECTOR_SIGNATURE), ctx(VECTOR_SECRET))


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f"{NON_MATCHING},{VECTOR_SIGNATURE}", id="second-of-two-v1"),
        pytest.param(f"{VECTOR_SIGNATURE},{NON_MATCHING}", id="first-of-two-v1"),
        pytest.param(f"{NON_MATCHING}, {VECTOR_SIGNATURE}", id="space-after-comma"),
        pytest.param(f"v0=abcd,{VECTOR_SIGNATURE}", id="other-scheme-ignored"),
        pytest.param(f"v1=nothex,{VECTOR_SIGNATURE}", id="bad-v1-value-skipped"),
        pytest.param(VECTOR_SIGNATURE.upper().replace("V1=", "v1="), id="upper-case-hex"),
    ],
)
def test_any_matching_v1_signature_verifies(value: str) -> None:
    pagerduty.verify(SIGNED_BODY, headers(value), ctx(VECTOR_SECRET))


def test_rotation_second_secret_matches() -> None:
    pagerduty.verify(SIGNED_BODY, headers(VECTOR_SIGNATURE), ctx(b"new-secret", VECTOR_SECRET))


@pytest.mark.parametrize(
    ("body", "hdrs", "secrets", "message"),
    [
        pytest.param(
            SIGNED_BODY,
            headers(NON_MATCHING),
            (VECTOR_SECRET,),
            "none",
            id="published-non-matching",
        ),
        pytest.param(
            SIGNED_BODY, headers(VECTOR_SIGNATURE), (b"wrong",), "none", id="wrong-secret"
        ),
        pytest.param(SIGNED_BODY, headers(VECTOR_SIGNATURE), (), "none", id="no-secrets"),
        pytest.param(
            SIGNED_BODY + b"\n",
            headers(VECTOR_SIGNATURE),
            (VECTOR_SECRET,),
            "none",
            id="body-changed",
        ),
        pytest.param(SIGNED_BODY, {}, (VECTOR_SECRET,), "missing", id="missing"),
        pytest.param(SIGNED_BODY, headers(""), (VECTOR_SECRET,), "missing", id="empty"),
        pytest.param(
            SIGNED_BODY,
            headers(VECTOR_SIGNATURE[3:]),
            (VECTOR_SECRET,),
            "malformed",
            id="no-scheme",
        ),
        pytest.param(
            SIGNED_BODY,
            headers("v2=" + VECTOR_SIGNATURE[3:]),
            (VECTOR_SECRET,),
            "malformed",
            id="only-other-schemes",
        ),
        pytest.param(SIGNED_BODY, headers("v1=zz"), (VECTOR_SECRET,), "malformed", id="not-hex"),
        pytest.param(
            SIGNED_BODY, headers(VECTOR_SIGNATURE[:-2]), (VECTOR_SECRET,), "malformed", id="short"
        ),
        pytest.param(SIGNED_BODY, headers(","), (VECTOR_SECRET,), "malformed", id="commas"),
    ],
)
def test_bad_signatures_are_refused(
    body: bytes, hdrs: dict[str, str], secrets: tuple[bytes, ...], message: str
) -> None:
    with pytest.raises(SignatureError, match=message) as raised:
        pagerduty.verify(body, hdrs, ctx(*secrets))
    assert VECTOR_SECRET.decode() not in str(raised.value)


@pytest.mark.parametrize(
    ("hdrs", "expected"),
    [
        (
            {"x-webhook-id": "a7f3a1e0-2f0b-4c5e-9a39-3c8b1f3e8d11"},
            "a7f3a1e0-2f0b-4c5e-9a39-3c8b1f3e8d11",
        ),
        ({}, None),
        ({"x-webhook-id": ""}, None),
        ({"x-github-delivery": "not-pagerduty"}, None),
    ],
)
def test_delivery_id(hdrs: dict[str, str], expected: str | None) -> None:
    assert pagerduty.delivery_id(hdrs) == expected


def test_adapter_exports_the_functions() -> None:
    adapter = pagerduty.adapter
    assert adapter.source == "pagerduty"
    assert (adapter.verify, adapter.delivery_id, adapter.parse) == (
        pagerduty.verify,
        pagerduty.delivery_id,
        pagerduty.parse,
    )

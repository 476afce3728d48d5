"""Linear inbound adapter: parse the recorded deliveries, their variants, and signatures.

Every payload is a real fixture from tests/fixtures/vendor/linear/ (see SOURCES.md); a
variant is made by loading one and changing fields here, never by editing the file.
Linear publishes no signature test vector, so bodies are signed here with hmac.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import ADAPTERS
from adapters.base import SignatureError, VerifyContext
from adapters.linear import adapter, delivery_id, parse, verify
from router.core.model import PayloadError

VENDOR = Path(__file__).parent / "fixtures" / "vendor"
FIXTURES = VENDOR / "linear"
SATYAM = "674c90c8-35ea-454d-8ca4-5548258fd795"  # creator and assignee in the 2023 issues
ISSUE_44 = "3443a709-f2b5-46f2-a136-a0445fd432be"
ALL_LABELS = frozenset({"improvement", "feature", "bug", "custom label"})


def load(name: str) -> Any:
    """Load a fresh copy of a fixture, so a test may change it."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def utc(text: str) -> datetime:
    """Read a Linear `...Z` timestamp independently of the adapter."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


# -- every fixture ------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_parses(path: Path) -> None:
    payload = json.loads(path.read_text())
    event = parse(payload, None)
    assert event.source == "linear"
    assert event.event_type == f"{payload['type']}.{payload['action']}"
    changed = payload["data"]["archivedAt" if payload["action"] == "remove" else "updatedAt"]
    assert event.occurred_at == utc(changed)
    assert (event.item is None) == (payload["type"] != "Issue")


# (fixture, id, key, number priority name, severity, status, assignees, labels, summary)
ISSUE_CASES = [
    ("Issue.create", ISSUE_44, "WEB-44", "Urgent", "sev1", "in_progress", (SATYAM,),
     ALL_LABELS, "created"),
    ("Issue.create.unassigned", "a4344dc7-7d8d-4b28-a93c-553ac9aba41a", "WEB-43",
     "No priority", "sev4", "open", (), frozenset(), "created"),
    ("Issue.update", ISSUE_44, "WEB-44", "Urgent", "sev1", "in_progress", (SATYAM,),
     ALL_LABELS, "title edited"),
    ("Issue.remove", ISSUE_44, "WEB-44", "Urgent", "sev1", "resolved", (SATYAM,),
     ALL_LABELS, "deleted"),
]


@pytest.mark.parametrize(
    ("name", "id_", "key", "priority", "severity", "status", "assignees", "labels",
     "summary"),
    ISSUE_CASES,
    ids=[c[0] for c in ISSUE_CASES],
)
def test_issue_fixture_fields(
    name: str, id_: str, key: str, priority: str, severity: str, status: str,
    assignees: tuple[str, ...], labels: frozenset[str], summary: str,
) -> None:
    payload = load(name)
    event = parse(payload, None)
    item = event.item
    assert item is not None
    assert (item.id, item.key, item.project, item.kind) == (id_, key, "WEB", "ticket")
    assert (item.priority, item.default_severity, item.status) == (priority, severity, status)
    assert item.assignees == assignees
    assert item.labels == labels
    assert item.reporter == SATYAM
    assert item.title == payload["data"]["title"]
    assert item.description == payload["data"]["description"]
    assert item.url == payload.get("url")
    assert item.created_at == utc(payload["data"]["createdAt"])
    assert item.updated_at == event.occurred_at
    assert event.summary == summary
    assert event.deleted == (name == "Issue.remove")
    assert event.actor is None  # 2023 deliveries carry no `actor`
    assert (event.assigned, event.unassigned) == ((), ())


def test_issue_create_reads_times_and_url() -> None:
    event = parse(load("Issue.create"), "ignored header value")
    item = event.item
    assert item is not None
    assert item.created_at == datetime(2023, 4, 11, 10, 10, 15, 37000, tzinfo=UTC)
    assert item.url is not None and item.url.startswith("https://linear.app/webhooks/issue/WEB-44/")


def test_remove_has_no_url_and_is_resolved() -> None:
    payload = load("Issue.remove")
    assert "url" not in payload and payload["data"]["state"]["type"] == "started"
    event = parse(payload, None)
    assert event.deleted is True
    assert event.item is not None
    assert (event.item.url, event.item.status) == (None, "resolved")


def test_a_removal_is_ordered_by_its_own_time() -> None:
    """A removal keeps the last update's `updatedAt`; `archivedAt` says when it happened."""
    payload = load("Issue.remove")
    event = parse(payload, None)
    assert event.occurred_at == utc(payload["data"]["archivedAt"])
    assert event.occurred_at > utc(payload["data"]["updatedAt"])
    del payload["data"]["archivedAt"]  # older deliveries: the update time is all there is
    assert parse(payload, None).occurred_at == utc(payload["data"]["updatedAt"])
    payload["data"]["archivedAt"] = "not a time"
    with pytest.raises(PayloadError, match=r"data\.archivedAt"):
        parse(payload, None)


def test_comment_is_ignored_but_names_its_issue() -> None:
    event = parse(load("Comment.create"), None)
    assert event.item is None
    assert event.ref is not None
    assert (event.ref.source, event.ref.id, event.ref.key) == (
        "linear", "f9a37fcf-eb52-44be-a52c-0477f70e9952", "WEB-46"
    )
    assert event.ignore_reason
    assert event.actor is None
    assert event.summary == "commented"
    assert event.occurred_at == datetime(2023, 4, 11, 10, 21, 34, 858000, tzinfo=UTC)


def test_comment_names_issue_from_nested_object() -> None:
    payload = load("Comment.create")
    del payload["data"]["issueId"]
    event = parse(payload, None)
    assert event.ref is not None and event.ref.id == "f9a37fcf-eb52-44be-a52c-0477f70e9952"


def test_project_is_ignored_with_its_actor() -> None:
    event = parse(load("Project.update"), None)
    assert event.item is None and event.ref is None
    assert event.ignore_reason
    assert event.actor == "e825c109-f691-4716-a85f-b68a2626531c"
    assert event.occurred_at == datetime(2026, 5, 28, 10, 0, 33, 554000, tzinfo=UTC)


def test_reaction_without_issue_is_ignored() -> None:
    payload = load("Comment.create")
    payload["type"] = "Reaction"
    payload["data"] = {"id": "r1", "emoji": "+1", "updatedAt": "2023-04-11T10:21:34.858Z"}
    event = parse(payload, None)
    assert event.item is None and event.ref is None
    assert event.ignore_reason and "Reaction" in event.ignore_reason


# -- variants of real fixtures -----------------------------------------------------


@pytest.mark.parametrize(
    ("state", "status"),
    [("triage", "open"), ("backlog", "open"), ("unstarted", "open"),
     ("started", "in_progress"), ("completed", "resolved"), ("canceled", "resolved"),
     ("something-new", "open")],
)
def test_state_type_maps_to_status(state: str, status: str) -> None:
    payload = load("Issue.update")
    payload["data"]["state"]["type"] = state
    item = parse(payload, None).item
    assert item is not None and item.status == status


def test_missing_state_is_open() -> None:
    payload = load("Issue.update")
    del payload["data"]["state"]
    item = parse(payload, None).item
    assert item is not None and item.status == "open"


@pytest.mark.parametrize(
    ("number", "label", "severity"),
    [(0, "No priority", "sev4"), (1, "Urgent", "sev1"), (2, "High", "sev2"),
     (3, "Medium", "sev3"), (4, "Low", "sev4")],
)
def test_priority_maps_to_default_severity(number: int, label: str, severity: str) -> None:
    payload = load("Issue.create")
    payload["data"].update(priority=number, priorityLabel=label)
    item = parse(payload, None).item
    assert item is not None
    assert (item.priority, item.default_severity) == (label, severity)


def test_priority_without_label_is_the_number_as_text() -> None:
    payload = load("Issue.create")
    del payload["data"]["priorityLabel"]
    payload["data"]["priority"] = 2
    item = parse(payload, None).item
    assert item is not None
    assert (item.priority, item.default_severity) == ("2", "sev2")


def test_missing_priority_is_sev4() -> None:
    payload = load("Issue.create")
    del payload["data"]["priorityLabel"], payload["data"]["priority"]
    item = parse(payload, None).item
    assert item is not None
    assert (item.priority, item.default_severity) == (None, "sev4")


@pytest.mark.parametrize(
    ("change", "key", "project"),
    [({"identifier": "WEB-44"}, "WEB-44", "WEB"),
     ({}, "WEB-44", "WEB"),  # no identifier in the 2023 fixtures: team.key + number
     ({"team": None}, "WEB-44", "WEB"),  # no team either: read from the URL
     ({"team": {"key": "OPS"}, "number": 9}, "OPS-9", "OPS")],
)
def test_key_comes_from_identifier_or_team_and_number(
    change: dict[str, Any], key: str, project: str
) -> None:
    payload = load("Issue.update")
    assert "identifier" not in payload["data"]
    payload["data"].update(change)
    item = parse(payload, None).item
    assert item is not None
    assert (item.key, item.project) == (key, project)


def test_identifier_wins_over_team_and_number() -> None:
    payload = load("Issue.update")
    payload["data"]["identifier"] = "ENG-7"  # the issue moved team; team.key still WEB
    item = parse(payload, None).item
    assert item is not None
    assert (item.key, item.project) == ("ENG-7", "WEB")


def test_missing_labels_are_empty() -> None:
    payload = load("Issue.create")
    del payload["data"]["labels"]
    item = parse(payload, None).item
    assert item is not None and item.labels == frozenset()


def test_actor_is_read_when_present() -> None:
    payload = load("Issue.update")
    payload["actor"] = load("Project.update")["actor"]
    assert parse(payload, None).actor == "e825c109-f691-4716-a85f-b68a2626531c"


@pytest.mark.parametrize(
    ("old", "new", "assigned", "unassigned", "summary"),
    [(None, SATYAM, (SATYAM,), (), "assigned to Satyam Bansal"),
     ("someone-else", SATYAM, (SATYAM,), ("someone-else",), "assigned to Satyam Bansal"),
     (SATYAM, None, (), (SATYAM,), "unassigned")],
    ids=["assigned", "reassigned", "unassigned"],
)
def test_assignee_change_from_updated_from(
    old: str | None, new: str | None, assigned: tuple[str, ...],
    unassigned: tuple[str, ...], summary: str,
) -> None:
    payload = load("Issue.update")
    payload["updatedFrom"] = {"updatedAt": "2023-04-11T10:13:05.980Z", "assigneeId": old}
    if new is None:
        payload["data"]["assigneeId"] = None
        del payload["data"]["assignee"]
    event = parse(payload, None)
    assert event.item is not None and event.item.assignees == assigned
    assert (event.assigned, event.unassigned) == (assigned, unassigned)
    assert event.summary == summary


def test_priority_and_state_change_summary() -> None:
    payload = load("Issue.update")
    payload["updatedFrom"] = {"priority": 3, "stateId": "x"}
    assert parse(payload, None).summary == "priority Medium -> Urgent; status In Progress"


# -- payloads that are not Linear deliveries ---------------------------------------


def _other(vendor: str, name: str) -> Any:
    return json.loads((VENDOR / vendor / name).read_text())


def _edit(name: str, **data: Any) -> Any:
    payload = load(name)
    for field, value in data.items():
        if value is ...:
            del payload["data"][field]
        else:
            payload["data"][field] = value
    return payload


def _drop(name: str, field: str) -> Any:
    payload = load(name)
    del payload[field]
    return payload


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "type"),
        ([], "JSON object"),
        (None, "JSON object"),
        (_other("github", "issues.opened.json"), "type"),
        (_other("jira", "issue_created.json"), "type"),
        (_other("pagerduty", "incident.triggered.json"), "type"),
        (_drop("Issue.create", "action"), "action"),
        (_drop("Issue.create", "data"), "data"),
        (_edit("Issue.create", id=...), "data.id"),
        (_edit("Issue.create", createdAt=...), "data.createdAt"),
        (_edit("Issue.create", updatedAt="not a time"), "data.updatedAt"),
        ({**_edit("Issue.create", team=None), "url": None}, "data.identifier"),
    ],
)
def test_not_a_linear_delivery_raises_payload_error(payload: Any, field: str) -> None:
    with pytest.raises(PayloadError, match=field.replace(".", r"\.")):
        parse(payload, None)


# -- signatures --------------------------------------------------------------------

BODY = (FIXTURES / "Issue.update.json").read_bytes()
SENT = json.loads(BODY)["webhookTimestamp"] / 1000  # 1681208213.456
SECRET = b"lin_wh_test_secret"
OTHER = b"lin_wh_previous_secret"


def sign(body: bytes, secret: bytes) -> dict[str, str]:
    return {"linear-signature": hmac.new(secret, body, hashlib.sha256).hexdigest()}


def ctx(*secrets: bytes, now: float = SENT + 1, max_age: float = 60.0) -> VerifyContext:
    return VerifyContext(secrets=secrets, now=now, max_age=max_age)


@pytest.mark.parametrize(
    ("now", "max_age"),
    [(SENT, 60.0), (SENT + 30, 60.0), (SENT + 60, 60.0), (SENT - 5, 60.0),
     (SENT + 250, 300.0)],
    ids=["same-time", "fresh", "at-limit", "clock-skew", "wider-window"],
)
def test_valid_fresh_signature_passes(now: float, max_age: float) -> None:
    verify(BODY, sign(BODY, SECRET), ctx(SECRET, now=now, max_age=max_age))


def test_rotation_second_secret_matches() -> None:
    verify(BODY, sign(BODY, SECRET), ctx(OTHER, SECRET))


def test_upper_case_hex_passes() -> None:
    header = sign(BODY, SECRET)["linear-signature"].upper()
    verify(BODY, {"linear-signature": header}, ctx(SECRET))


@pytest.mark.parametrize(
    ("now", "max_age"),
    [(SENT + 61, 60.0), (SENT - 61, 60.0), (SENT + 3600 * 24 * 365, 60.0),
     (SENT + 11, 10.0)],
    ids=["old", "future", "year-old", "narrow-window"],
)
def test_stale_delivery_is_refused(now: float, max_age: float) -> None:
    with pytest.raises(SignatureError, match="stale"):
        verify(BODY, sign(BODY, SECRET), ctx(SECRET, now=now, max_age=max_age))


def _body_without_timestamp() -> bytes:
    payload = json.loads(BODY)
    del payload["webhookTimestamp"]
    return json.dumps(payload).encode()


NO_STAMP = _body_without_timestamp()


@pytest.mark.parametrize(
    ("body", "headers", "secrets", "message"),
    [
        (BODY, sign(BODY, OTHER), (SECRET,), "matches none"),
        (BODY + b"\n", sign(BODY, SECRET), (SECRET,), "matches none"),
        (BODY, {}, (SECRET,), "missing"),
        (BODY, {"linear-signature": "  "}, (SECRET,), "missing"),
        (BODY, {"linear-signature": "sha256=" + sign(BODY, SECRET)["linear-signature"]},
         (SECRET,), "malformed"),
        (BODY, {"linear-signature": "g" * 64}, (SECRET,), "malformed"),
        (BODY, {"linear-signature": "abc"}, (SECRET,), "malformed"),
        (BODY, sign(BODY, SECRET), (), "no webhook secret"),
        (NO_STAMP, sign(NO_STAMP, SECRET), (SECRET,), "webhookTimestamp"),
        (b"[1, 2]", sign(b"[1, 2]", SECRET), (SECRET,), "webhookTimestamp"),
    ],
    ids=["wrong-secret", "tampered-body", "no-header", "blank-header", "prefixed",
         "not-hex", "short", "no-secrets", "no-timestamp", "not-an-object"],
)
def test_bad_signature_is_refused(
    body: bytes, headers: dict[str, str], secrets: tuple[bytes, ...], message: str
) -> None:
    with pytest.raises(SignatureError, match=message) as caught:
        verify(body, headers, ctx(*secrets))
    assert SECRET.decode() not in str(caught.value)


def test_signed_body_that_is_not_json_is_bad_input_not_a_bad_signature() -> None:
    with pytest.raises(PayloadError, match="not JSON"):
        verify(b"not json", sign(b"not json", SECRET), ctx(SECRET))


def test_unsigned_garbage_is_a_signature_error() -> None:
    with pytest.raises(SignatureError, match="matches none"):
        verify(b"not json", sign(b"not json", OTHER), ctx(SECRET))


def test_stale_check_needs_a_valid_signature_first() -> None:
    with pytest.raises(SignatureError, match="matches none"):
        verify(BODY, sign(BODY, OTHER), ctx(SECRET, now=SENT + 3600))


# -- delivery id and registry ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"linear-delivery": "234d1a4e-b617-4388-90fe-adc3633d6b72"},
      "234d1a4e-b617-4388-90fe-adc3633d6b72"),
     ({}, None), ({"linear-delivery": ""}, None)],
)
def test_delivery_id(headers: dict[str, str], expected: str | None) -> None:
    assert delivery_id(headers) == expected


def test_adapter_is_registered() -> None:
    assert adapter.source == "linear"
    assert ADAPTERS["linear"] is adapter
    assert adapter.parse is parse and adapter.verify is verify

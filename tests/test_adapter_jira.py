"""Jira inbound adapter: parse the recorded deliveries, their variants, and signatures.

Every payload is a real fixture from tests/fixtures/vendor/jira/ (see SOURCES.md); a
variant is made by loading one and changing fields here, never by editing the file.
Jira publishes no signature test vector, so bodies are signed here with hmac.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import ADAPTERS
from adapters.base import SignatureError, VerifyContext
from adapters.jira import adapter, delivery_id, parse, verify
from router.core.model import PayloadError

VENDOR = Path(__file__).parent / "fixtures" / "vendor"
FIXTURES = VENDOR / "jira"
ADMIN = "5c5f880629be9642ba529340"  # accountId of user "admin" in the TES/IDT fixtures
SAMPLE = "5cedcb4355a88a0fc86388ba"  # accountId of "sample.user" in the KT fixture
PST = timezone(timedelta(hours=-8))


def load(name: str) -> Any:
    """Load a fresh copy of a fixture, so a test may change it."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=UTC)


# -- every fixture ------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.stem)
def test_every_fixture_parses(path: Path) -> None:
    payload = json.loads(path.read_text())
    event = parse(payload, None)
    assert event.source == "jira"
    assert event.event_type == payload["webhookEvent"]
    assert event.occurred_at == ms(payload["timestamp"])
    assert (event.item is None) == (event.ignore_reason is not None)


# (fixture, key, status, priority, severity, assignees, labels, assigned, unassigned,
#  summary)
ISSUE_CASES = [
    ("issue_created", "TES-41", "open", "High", "sev2", (), {"test-label"}, (), (),
     "created"),
    ("issue_created.assigned_labels", "KT-22", "open", "Medium", "sev3", (SAMPLE,),
     {"label1", "label2"}, (SAMPLE,), (), "created"),
    ("issue_updated.issue_assigned", "TES-41", "open", "High", "sev2", (ADMIN,),
     {"test-label"}, (ADMIN,), (), "assigned to Test User"),
    ("issue_updated.unassigned", "TES-41", "open", "High", "sev2", (), {"test-label"},
     (), (ADMIN,), "unassigned"),
    ("issue_updated.priority_raised", "TES-41", "open", "High", "sev2", (),
     {"sad", "test-label"}, (), (), "priority Low -> High"),
    ("issue_updated.labels", "TES-41", "open", "High", "sev2", (), {"sad", "test-label"},
     (), (), "labels sad test-label"),
    ("issue_updated.status_in_progress", "TES-41", "in_progress", "High", "sev2", (),
     {"test-label"}, (), (), "status In Progress"),
    ("issue_updated.resolved", "TES-41", "resolved", "High", "sev2", (), {"test-label"},
     (), (), "status Done"),
    ("issue_deleted", "IDT-19", "resolved", "Medium", "sev3", (), set(), (), (),
     "deleted"),
]


@pytest.mark.parametrize(
    ("name", "key", "status", "priority", "severity", "assignees", "labels", "assigned",
     "unassigned", "summary"),
    ISSUE_CASES,
    ids=[c[0] for c in ISSUE_CASES],
)
def test_issue_fixture_fields(
    name: str, key: str, status: str, priority: str, severity: str,
    assignees: tuple[str, ...], labels: set[str], assigned: tuple[str, ...],
    unassigned: tuple[str, ...], summary: str,
) -> None:
    event = parse(load(name), None)
    item = event.item
    assert item is not None
    assert (item.key, item.status, item.priority, item.default_severity) == (
        key, status, priority, severity
    )
    assert item.assignees == assignees
    assert item.labels == frozenset(labels)
    assert (event.assigned, event.unassigned) == (assigned, unassigned)
    assert event.summary == summary
    assert event.deleted == (name == "issue_deleted")


def test_issue_created_reads_every_field() -> None:
    event = parse(load("issue_created"), "ignored header value")
    item = event.item
    assert item is not None
    assert item.source == "jira"
    assert item.id == "10040"
    assert item.url == "https://some-instance-test.atlassian.net/browse/TES-41"
    assert item.kind == "ticket"
    assert item.project == "TES"
    assert item.title == "Unit test summary"
    assert item.description == "Unit test description, not that long"
    assert item.reporter == ADMIN
    assert item.created_at == datetime(2019, 2, 15, 19, 1, 52, 971000, tzinfo=PST)
    assert item.updated_at == item.created_at
    assert event.actor == ADMIN
    assert event.occurred_at == ms(1550286113023)
    assert event.ref is None and event.ignore_reason is None


def test_other_site_builds_its_own_browse_url() -> None:
    item = parse(load("issue_created.assigned_labels"), None).item
    assert item is not None
    assert item.id == "10509"
    assert item.url == "https://mmtest.atlassian.net/browse/KT-22"
    assert item.project == "KT"
    assert item.created_at == datetime(2019, 8, 27, 12, 43, 24, 193000,
                                       tzinfo=timezone(timedelta(hours=-7)))


def test_deleted_issue_is_resolved_whatever_its_status() -> None:
    payload = load("issue_deleted")
    assert payload["issue"]["fields"]["status"]["statusCategory"]["key"] == "new"
    event = parse(payload, None)
    assert event.deleted is True
    assert event.item is not None
    assert (event.item.id, event.item.status) == ("10303", "resolved")
    assert event.item.title == "hey"


# -- comments ----------------------------------------------------------------------


def test_comment_with_slim_issue_is_ignored_but_names_the_issue() -> None:
    event = parse(load("comment_created"), None)
    assert event.item is None
    assert event.ref is not None
    assert (event.ref.source, event.ref.id, event.ref.key) == ("jira", "10040", "TES-41")
    assert event.ignore_reason
    assert event.actor == ADMIN  # no `user` in the body: the comment's author
    assert event.occurred_at == ms(1550286678321)
    assert event.summary == "commented"


def test_comment_with_full_issue_is_decided_on() -> None:
    payload = load("comment_created")
    payload["issue"] = load("issue_updated.labels")["issue"]
    event = parse(payload, None)
    assert event.item is not None
    assert event.item.labels == frozenset({"sad", "test-label"})
    assert event.actor == ADMIN
    assert event.summary == "commented"


def test_comment_updated_actor_is_the_editor() -> None:
    payload = load("comment_created")
    payload["webhookEvent"] = "comment_updated"
    payload["comment"]["updateAuthor"]["accountId"] = "editor-1"
    event = parse(payload, None)
    assert event.actor == "editor-1"
    assert event.summary == "comment edited"


def test_body_user_wins_over_comment_author() -> None:
    payload = load("comment_created")
    payload["user"] = {"accountId": "user-7"}
    assert parse(payload, None).actor == "user-7"


# -- variants of real fixtures -----------------------------------------------------


@pytest.mark.parametrize(
    ("priority", "severity"),
    [("Highest", "sev1"), ("High", "sev2"), ("Medium", "sev3"), ("Low", "sev4"),
     ("Lowest", "sev4"), ("highest", "sev1"), ("Blocker", "sev4")],
)
def test_priority_maps_to_default_severity(priority: str, severity: str) -> None:
    payload = load("issue_created")
    payload["issue"]["fields"]["priority"]["name"] = priority
    item = parse(payload, None).item
    assert item is not None
    assert (item.priority, item.default_severity) == (priority, severity)


@pytest.mark.parametrize("priority", [None, "absent"])
def test_missing_priority_is_sev4(priority: str | None) -> None:
    payload = load("issue_created")
    if priority is None:
        payload["issue"]["fields"]["priority"] = None
    else:
        del payload["issue"]["fields"]["priority"]
    item = parse(payload, None).item
    assert item is not None
    assert (item.priority, item.default_severity) == (None, "sev4")


@pytest.mark.parametrize(
    ("category", "status"),
    [("new", "open"), ("indeterminate", "in_progress"), ("done", "resolved"),
     ("undefined", "open")],
)
def test_status_category_maps_to_status(category: str, status: str) -> None:
    payload = load("issue_updated.status_in_progress")
    payload["issue"]["fields"]["status"]["statusCategory"]["key"] = category
    item = parse(payload, None).item
    assert item is not None and item.status == status


def test_status_without_category_is_open() -> None:
    payload = load("issue_updated.resolved")
    del payload["issue"]["fields"]["status"]["statusCategory"]
    item = parse(payload, None).item
    assert item is not None and item.status == "open"


def test_assignee_without_account_id_falls_back_to_name() -> None:
    payload = load("issue_updated.issue_assigned")
    del payload["issue"]["fields"]["assignee"]["accountId"]
    item = parse(payload, None).item
    assert item is not None and item.assignees == ("admin",)


def test_null_description_is_empty_text() -> None:
    payload = load("issue_created")
    payload["issue"]["fields"]["description"] = None
    item = parse(payload, None).item
    assert item is not None and item.description == ""


def test_adf_description_is_flattened_to_text() -> None:
    payload = load("issue_created")
    payload["issue"]["fields"]["description"] = {
        "type": "doc", "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": "db down"}]}],
    }
    item = parse(payload, None).item
    assert item is not None and item.description == "db down"


def test_an_adf_description_nested_as_deep_as_json_goes_is_flattened() -> None:
    """orjson reads 1,024 levels; walking them by recursion overflowed Python's stack."""
    raw = (FIXTURES / "issue_created.json").read_text()
    payload = json.loads(raw)
    payload["issue"]["fields"]["description"] = "@@"
    body = json.dumps(payload).replace('"@@"', '{"content":[' * 500 + '{"text":"deep"}'
                                       + "]}" * 500)
    item = parse(orjson.loads(body), None).item
    assert item is not None and item.description == "deep"


@pytest.mark.parametrize("stamp", [9.2e21, -9.2e21, 2**63, "0001-01-01T00:00:00+14:00",
                                   "9999-12-31T23:59:59.999-14:00"])
def test_a_timestamp_no_calendar_holds_is_a_payload_error(stamp: Any) -> None:
    payload = load("issue_created")
    payload["timestamp"] = stamp
    with pytest.raises(PayloadError, match="timestamp: not a timestamp"):
        parse(payload, None)


def test_changelog_account_ids_are_preferred() -> None:
    payload = load("issue_updated.unassigned")
    payload["changelog"]["items"][0].update(
        {"from": "old-id", "tmpFromAccountId": "old-acct", "to": "new-id", "toString": None}
    )
    event = parse(payload, None)
    assert (event.assigned, event.unassigned) == (("new-id",), ("old-acct",))
    assert event.summary == "assigned to new-id"


def test_changelog_name_not_in_payload_is_kept_as_is() -> None:
    payload = load("issue_updated.unassigned")
    payload["changelog"]["items"][0]["from"] = "someone.else"
    assert parse(payload, None).unassigned == ("someone.else",)


def test_unknown_event_with_full_issue_is_parsed() -> None:
    payload = load("issue_updated.labels")
    payload["webhookEvent"] = "issue_property_set"
    event = parse(payload, None)
    assert event.item is not None and event.item.key == "TES-41"
    assert event.event_type == "issue_property_set"


def test_event_without_issue_is_ignored() -> None:
    payload = load("issue_created")
    del payload["issue"], payload["changelog"]
    payload["webhookEvent"] = "project_created"
    event = parse(payload, None)
    assert event.item is None and event.ref is None
    assert event.ignore_reason
    assert event.actor == ADMIN


def test_worklog_names_its_issue() -> None:
    payload = load("issue_created")
    del payload["issue"], payload["changelog"]
    payload["webhookEvent"] = "worklog_created"
    payload["worklog"] = {"issueId": "10040", "id": "1"}
    event = parse(payload, None)
    assert event.item is None
    assert event.ref is not None and event.ref.id == "10040"


# -- payloads that are not Jira deliveries -----------------------------------------


def _github() -> Any:
    return json.loads((VENDOR / "github" / "issues.opened.json").read_text())


def _without(path: tuple[str, ...], name: str = "issue_created") -> Any:
    payload = load(name)
    target = payload
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]
    return payload


def _with(path: tuple[str, ...], value: Any, name: str = "issue_created") -> Any:
    payload = load(name)
    target = payload
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return payload


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "webhookEvent"),
        ([], "JSON object"),
        ("jira:issue_created", "JSON object"),
        (None, "JSON object"),
        (_github(), "webhookEvent"),
        (_without(("issue",)), "issue"),
        (_without(("issue", "id")), "issue.id"),
        (_without(("issue", "key")), "issue.key"),
        (_without(("issue", "fields")), "issue.fields"),
        (_without(("issue", "fields", "status")), "issue.fields.status"),
        (_without(("issue", "fields", "created")), "issue.fields.created"),
        (_with(("issue", "fields", "created"), "yesterday"), "issue.fields.created"),
        (_with(("timestamp",), "soon"), "timestamp"),
        (_with(("issue",), ["not", "an", "object"]), "issue"),
        (_without(("issue", "id"), "comment_created"), "issue.id"),
    ],
)
def test_not_a_jira_delivery_raises_payload_error(payload: Any, field: str) -> None:
    with pytest.raises(PayloadError, match=field.replace(".", r"\.")):
        parse(payload, None)


# -- signatures --------------------------------------------------------------------

BODY = (FIXTURES / "issue_created.json").read_bytes()
SECRET = b"It's a Secret to Jira"
OTHER = b"the previous secret"


def sign(body: bytes, secret: bytes, algorithm: str = "sha256") -> dict[str, str]:
    digest = hmac.new(secret, body, getattr(hashlib, algorithm)).hexdigest()
    return {"x-hub-signature": f"{algorithm}={digest}"}


def ctx(*secrets: bytes) -> VerifyContext:
    return VerifyContext(secrets=secrets, now=0.0)


def test_valid_signature_passes() -> None:
    verify(BODY, sign(BODY, SECRET), ctx(SECRET))


def test_upper_case_hex_passes() -> None:
    header = sign(BODY, SECRET)["x-hub-signature"]
    verify(BODY, {"x-hub-signature": "sha256=" + header[7:].upper()}, ctx(SECRET))


def test_rotation_second_secret_matches() -> None:
    verify(BODY, sign(BODY, SECRET), ctx(OTHER, SECRET))


def test_sha512_signature_passes() -> None:
    verify(BODY, sign(BODY, SECRET, "sha512"), ctx(SECRET))


@pytest.mark.parametrize(
    ("body", "headers", "secrets", "message"),
    [
        (BODY, sign(BODY, OTHER), (SECRET,), "matches none"),
        (BODY + b" ", sign(BODY, SECRET), (SECRET,), "matches none"),
        (BODY, {}, (SECRET,), "missing"),
        (BODY, {"x-hub-signature": ""}, (SECRET,), "missing"),
        (BODY, {"x-hub-signature-256": sign(BODY, SECRET)["x-hub-signature"]}, (SECRET,),
         "missing"),
        (BODY, {"x-hub-signature": sign(BODY, SECRET)["x-hub-signature"][7:]}, (SECRET,),
         "malformed"),
        (BODY, {"x-hub-signature": "sha256=" + "zz" * 32}, (SECRET,), "malformed"),
        (BODY, {"x-hub-signature": "sha256=abc123"}, (SECRET,), "malformed"),
        (BODY, sign(BODY, SECRET, "sha1"), (SECRET,), "malformed"),
        (BODY, {"x-hub-signature": "md5=" + "0" * 32}, (SECRET,), "malformed"),
        (BODY, sign(BODY, SECRET), (), "no webhook secret"),
    ],
    ids=["wrong-secret", "tampered-body", "no-header", "empty-header", "github-header",
         "no-method", "not-hex", "short", "sha1", "md5", "no-secrets"],
)
def test_bad_signature_is_refused(
    body: bytes, headers: dict[str, str], secrets: tuple[bytes, ...], message: str
) -> None:
    with pytest.raises(SignatureError, match=message) as caught:
        verify(body, headers, ctx(*secrets))
    assert SECRET.decode() not in str(caught.value)


# -- delivery id and registry ------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [({"x-atlassian-webhook-identifier": "1234-abcd"}, "1234-abcd"),
     ({}, None), ({"x-atlassian-webhook-identifier": ""}, None)],
)
def test_delivery_id(headers: dict[str, str], expected: str | None) -> None:
    assert delivery_id(headers) == expected


def test_adapter_is_registered() -> None:
    assert adapter.source == "jira"
    assert ADAPTERS["jira"] is adapter
    assert adapter.parse is parse and adapter.verify is verify

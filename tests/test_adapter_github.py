"""GitHub inbound adapter: every real fixture, the SPEC §3 mappings, signatures, garbage.

Fixtures under tests/fixtures/vendor/github are unmodified copies of octokit/webhooks'
documentation examples (see SOURCES.md); variants are made by loading one and changing
fields here, never by editing the files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters import github
from adapters.base import SignatureError, VerifyContext
from router.core.model import Event, PayloadError, WorkItem
from tests.support import github_comment_on_pull_request

VENDOR = Path(__file__).parent / "fixtures" / "vendor"
GITHUB = VENDOR / "github"
FIXTURES = sorted(path.name for path in GITHUB.glob("*.json"))

REPO = "Codertocat/Hello-World"
ISSUE_URL = "https://github.com/Codertocat/Hello-World/issues/1"
PR_URL = "https://github.com/Codertocat/Hello-World/pull/2"
ISSUE_BODY = "It looks like you accidently spelled 'commit' with two 't's."
PR_BODY = "This is a pretty simple change that we need to pull into master."

# The published vector (github/docs, validating-webhook-deliveries.md).
VECTOR_SECRET = b"It's a Secret to Everybody"
VECTOR_BODY = b"Hello, World!"
VECTOR_HEADER = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"


def at(text: str) -> datetime:
    """Parse a fixture's `Z` timestamp the way expectations are written below."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def load(name: str, vendor: str = "github") -> Any:
    """Load a fresh copy of a fixture, so a test may change it freely."""
    return json.loads((VENDOR / vendor / name).read_text())


def item_of(event: Event) -> WorkItem:
    """Return the event's item, failing the test when it has none."""
    assert event.item is not None
    return event.item


def ctx(*secrets: bytes) -> VerifyContext:
    return VerifyContext(secrets=secrets, now=0.0)


# --- every fixture -----------------------------------------------------------------------

ITEM_FIXTURES = [
    # file, event_type, summary, updated_at, assignees, assigned, unassigned
    (
        "issues.opened.json",
        "issues.opened",
        "opened",
        "2019-05-15T15:20:18",
        ("Codertocat",),
        (),
        (),
    ),
    (
        "issues.edited.json",
        "issues.edited",
        "edited",
        "2019-05-15T15:20:18",
        ("Codertocat",),
        (),
        (),
    ),
    (
        "issues.labeled.json",
        "issues.labeled",
        "labeled bug",
        "2019-05-15T15:20:18",
        ("Codertocat",),
        (),
        (),
    ),
    (
        "issues.assigned.json",
        "issues.assigned",
        "assigned to Codertocat",
        "2019-05-15T15:20:18",
        ("Codertocat",),
        ("Codertocat",),
        (),
    ),
    # The example still lists Codertocat in issue.assignees (SOURCES.md); the event wins.
    (
        "issues.unassigned.json",
        "issues.unassigned",
        "unassigned Codertocat",
        "2019-05-15T15:20:25",
        (),
        (),
        ("Codertocat",),
    ),
    (
        "issue_comment.created.json",
        "issue_comment.created",
        "comment created",
        "2019-05-15T15:20:21",
        ("Codertocat",),
        (),
        (),
    ),
]


@pytest.mark.parametrize(
    ("name", "event_type", "summary", "updated", "assignees", "assigned", "unassigned"),
    ITEM_FIXTURES,
)
def test_issue_fixtures_parse(
    name: str,
    event_type: str,
    summary: str,
    updated: str,
    assignees: tuple[str, ...],
    assigned: tuple[str, ...],
    unassigned: tuple[str, ...],
) -> None:
    event = github.parse(load(name), name.split(".")[0])
    item = item_of(event)
    assert (event.source, event.event_type, event.summary) == ("github", event_type, summary)
    assert event.actor == "Codertocat"
    assert event.occurred_at == at(updated) == item.updated_at
    assert (event.assigned, event.unassigned) == (assigned, unassigned)
    assert not event.deleted and event.ignore_reason is None
    assert item == WorkItem(
        source="github",
        id="186853002#1",  # repository.id # number
        key=f"{REPO}#1",
        url=ISSUE_URL,
        kind="ticket",
        project=REPO,
        title="Spelling error in the README file",
        description=ISSUE_BODY,
        labels=frozenset({"bug"}),
        priority=None,
        default_severity="sev4",
        status="open",
        assignees=assignees,
        reporter="Codertocat",
        created_at=at("2019-05-15T15:20:18"),
        updated_at=at(updated),
    )


@pytest.mark.parametrize(
    ("name", "status", "updated", "summary"),
    [
        ("pull_request.opened.json", "open", "2019-05-15T15:20:33", "opened"),
        ("pull_request.closed.json", "resolved", "2019-05-15T15:21:18", "closed"),
    ],
)
def test_pull_request_fixtures_parse(name: str, status: str, updated: str, summary: str) -> None:
    event = github.parse(load(name), "pull_request")
    item = item_of(event)
    assert event.event_type == name.removesuffix(".json")
    assert (event.actor, event.occurred_at, event.summary) == ("Codertocat", at(updated), summary)
    assert item == WorkItem(
        source="github",
        id="186853002#2",
        key=f"{REPO}#2",
        url=PR_URL,
        kind="pull_request",
        project=REPO,
        title="Update the README with new information.",
        description=PR_BODY,
        labels=frozenset({"bug"}),
        priority=None,
        default_severity="sev4",
        status=status,  # type: ignore[arg-type]
        # The single `assignee` is null in these examples; the `assignees` list decides.
        assignees=("Codertocat",),
        reporter="Codertocat",
        created_at=at("2019-05-15T15:20:33"),
        updated_at=at(updated),
        branch="changes",  # head.ref: review checklists link items a branch names
    )


@pytest.mark.parametrize(
    ("name", "event_type", "occurred", "summary"),
    [
        (
            "check_suite.completed.json",
            "check_suite.completed",
            "2019-05-15T15:21:14",
            "check suite completed",
        ),
        (
            "deployment_status.created.json",
            "deployment_status.created",
            "2019-05-15T15:20:55",
            "deployment status created",
        ),
        ("ping.json", "ping", "2019-05-15T15:20:49", "ping"),  # hook.updated_at
    ],
)
def test_item_less_fixtures_are_ignored(
    name: str, event_type: str, occurred: str, summary: str
) -> None:
    header = name.split(".")[0]
    event = github.parse(load(name), header)
    assert (event.item, event.ref, event.deleted) == (None, None, False)
    assert (event.event_type, event.summary) == (event_type, summary)
    assert event.ignore_reason == f"a GitHub {header} event carries no issue or pull request"
    assert (event.actor, event.occurred_at) == ("Codertocat", at(occurred))


@pytest.mark.parametrize("name", FIXTURES)
def test_infer_event_type_matches_file_name(name: str) -> None:
    assert github.infer_event_type(load(name)) == name.split(".")[0]


@pytest.mark.parametrize("name", FIXTURES)
def test_parse_without_header_equals_parse_with_it(name: str) -> None:
    payload = load(name)
    assert github.parse(payload, None) == github.parse(payload, name.split(".")[0])


def test_all_fixtures_are_covered() -> None:
    tested = {row[0] for row in ITEM_FIXTURES} | {
        "pull_request.opened.json",
        "pull_request.closed.json",
        "check_suite.completed.json",
        "deployment_status.created.json",
        "ping.json",
    }
    assert tested == set(FIXTURES)


# --- SPEC §3 mappings, as variants of real fixtures -------------------------------------


def opened_with(**issue: Any) -> Any:
    """Return issues.opened.json with some `issue` fields replaced."""
    payload = load("issues.opened.json")
    payload["issue"].update(issue)
    return payload


@pytest.mark.parametrize(
    ("labels", "severity"),
    [
        (["sev1"], "sev1"),
        (["sev2"], "sev2"),
        (["sev3"], "sev3"),
        (["sev4"], "sev4"),
        (["p1"], "sev1"),
        (["p2"], "sev2"),
        (["p3"], "sev3"),
        (["p4"], "sev4"),
        (["SEV2", "Bug"], "sev2"),  # label names compare lower-cased
        (["p3", "sev1", "p2"], "sev1"),  # the most severe wins
        (["sev4", "p2"], "sev2"),
        (["bug"], "sev4"),
        (["severity-1", "P0"], "sev4"),  # only exact sevN / pN names count
        ([], "sev4"),
    ],
)
def test_default_severity_from_labels(labels: list[str], severity: str) -> None:
    event = github.parse(opened_with(labels=[{"name": n} for n in labels]), "issues")
    item = item_of(event)
    assert item.default_severity == severity
    assert item.labels == frozenset(n.lower() for n in labels)
    assert item.priority is None


@pytest.mark.parametrize(("state", "status"), [("open", "open"), ("closed", "resolved")])
def test_status_from_state(state: str, status: str) -> None:
    assert item_of(github.parse(opened_with(state=state), "issues")).status == status


def test_unknown_state_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="state"):
        github.parse(opened_with(state="locked"), "issues")


@pytest.mark.parametrize("action", ["deleted", "transferred"])
def test_removed_issue_counts_as_resolved(action: str) -> None:
    payload = load("issues.opened.json")
    payload["action"] = action
    event = github.parse(payload, "issues")
    assert event.deleted
    assert item_of(event).status == "resolved"
    assert event.event_type == f"issues.{action}"


@pytest.mark.parametrize(
    ("name", "header"),
    [
        ("issue_comment.created.json", "issue_comment"),
        ("pull_request.closed.json", "pull_request"),
    ],
)
def test_deleted_action_outside_issues_does_not_delete_the_item(name: str, header: str) -> None:
    payload = load(name)
    payload["action"] = "deleted"  # a deleted comment leaves its issue in place
    event = github.parse(payload, header)
    assert not event.deleted
    assert event.summary == ("comment deleted" if header == "issue_comment" else "deleted")


def test_closed_issue_is_not_deleted() -> None:
    payload = opened_with(state="closed")
    payload["action"] = "closed"
    event = github.parse(payload, "issues")
    assert not event.deleted and item_of(event).status == "resolved"


def test_merged_pull_request_summary() -> None:
    payload = load("pull_request.closed.json")
    payload["pull_request"]["merged"] = True
    assert github.parse(payload, "pull_request").summary == "merged"


def test_a_comment_on_a_pull_request_is_the_same_item_as_the_pull_request() -> None:
    """`issue_comment` names the PR by its issue (`issue.id`), `pull_request` events by
    `pull_request.id`: the item is keyed by what both carry, repository id and number."""
    comment = github_comment_on_pull_request()
    assert comment["issue"]["id"] != load("pull_request.opened.json")["pull_request"]["id"]
    on_pr = item_of(github.parse(comment, "issue_comment"))
    pr = item_of(github.parse(load("pull_request.opened.json"), "pull_request"))
    assert (on_pr.id, on_pr.key, on_pr.kind) == (pr.id, pr.key, "pull_request")
    assert on_pr.id == "186853002#2"


def test_a_renamed_repository_keeps_its_items() -> None:
    payload = load("issues.opened.json")
    payload["repository"]["full_name"] = "Codertocat/Hello-Universe"
    item = item_of(github.parse(payload, "issues"))
    assert (item.id, item.key) == ("186853002#1", "Codertocat/Hello-Universe#1")


def test_assignees_come_from_the_list_not_the_single_assignee() -> None:
    payload = opened_with(
        assignee={"login": "dreyes"}, assignees=[{"login": "sokafor"}, {"login": "lpark"}]
    )
    assert item_of(github.parse(payload, "issues")).assignees == ("sokafor", "lpark")


@pytest.mark.parametrize("action", ["assigned", "unassigned"])
def test_pull_request_assignment_actions(action: str) -> None:
    payload = load("pull_request.opened.json")
    payload.update(action=action, assignee={"login": "dreyes"})
    event = github.parse(payload, "pull_request")
    changed = (event.assigned, event.unassigned)
    assert changed == ((("dreyes",), ()) if action == "assigned" else ((), ("dreyes",)))


def test_assigned_login_missing_from_the_list_is_added() -> None:
    payload = load("issues.assigned.json")
    payload["assignee"] = {"login": "dreyes"}
    event = github.parse(payload, "issues")
    assert event.assigned == ("dreyes",)
    assert item_of(event).assignees == ("Codertocat", "dreyes")


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("body", None, lambda item: item.description == ""),
        ("html_url", None, lambda item: item.url is None),
        ("user", None, lambda item: item.reporter is None),
        ("labels", None, lambda item: item.labels == frozenset()),
        ("assignees", None, lambda item: item.assignees == ()),
        (
            "created_at",
            "2019-05-15T17:20:18+02:00",
            lambda item: item.created_at == at("2019-05-15T15:20:18"),
        ),
    ],
)
def test_optional_issue_fields(field: str, value: Any, check: Any) -> None:
    assert check(item_of(github.parse(opened_with(**{field: value}), "issues")))


def test_missing_sender_gives_no_actor() -> None:
    payload = load("issues.opened.json")
    del payload["sender"]
    assert github.parse(payload, "issues").actor is None


def test_item_less_event_without_any_time() -> None:
    payload = load("ping.json")
    del payload["hook"]["updated_at"]
    assert github.parse(payload, "ping").occurred_at is None


def test_item_less_event_ignores_the_repository_time() -> None:
    payload = {
        "ref": "refs/heads/main",
        "commits": [],
        "pusher": {"name": "x"},
        "repository": load("ping.json")["repository"],
        "sender": {"login": "x"},
    }
    event = github.parse(payload, None)
    assert (event.event_type, event.occurred_at, event.item) == ("push", None, None)


# --- garbage ------------------------------------------------------------------------------

NOT_GITHUB = [
    pytest.param({}, id="empty-object"),
    pytest.param([], id="list"),
    pytest.param("issues", id="string"),
    pytest.param(None, id="null"),
    pytest.param(42, id="number"),
    pytest.param(load("issue_created.json", "jira"), id="jira"),
    pytest.param(load("Issue.create.json", "linear"), id="linear"),
    pytest.param(load("incident.triggered.json", "pagerduty"), id="pagerduty"),
]


@pytest.mark.parametrize("payload", NOT_GITHUB)
@pytest.mark.parametrize("event_type", [None, "issues", "ping"])
def test_non_github_payloads_are_payload_errors(payload: Any, event_type: str | None) -> None:
    with pytest.raises(PayloadError):
        github.parse(payload, event_type)


@pytest.mark.parametrize("payload", NOT_GITHUB)
def test_infer_event_type_refuses_non_github_payloads(payload: Any) -> None:
    with pytest.raises(PayloadError):
        github.infer_event_type(payload)


def test_unrecognised_shape_asks_for_the_header() -> None:
    with pytest.raises(PayloadError, match="X-GitHub-Event"):
        github.infer_event_type({"action": "created", "sender": {"login": "x"}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.pop("issue"), "no issue"),
        (lambda p: p.update(issue=[]), "no issue"),
        (lambda p: p.pop("repository"), "no repository"),
        (lambda p: p["repository"].pop("full_name"), "full_name"),
        (lambda p: p["repository"].pop("id"), "repository.id"),
        (lambda p: p["repository"].update(id=True), "repository.id"),
        (lambda p: p["issue"].pop("number"), "issue.number"),
        (lambda p: p["issue"].update(number="1"), "issue.number"),
        (lambda p: p["issue"].pop("created_at"), "issue.created_at"),
        (lambda p: p["issue"].update(updated_at="yesterday"), "issue.updated_at"),
        (lambda p: p["issue"].update(updated_at=[]), "issue.updated_at"),
    ],
)
def test_broken_issue_payloads_are_payload_errors(change: Any, message: str) -> None:
    payload = load("issues.opened.json")
    change(payload)
    with pytest.raises(PayloadError, match=message):
        github.parse(payload, "issues")


def test_pull_request_event_without_pull_request_is_a_payload_error() -> None:
    with pytest.raises(PayloadError, match="pull_request"):
        github.parse(load("issues.opened.json"), "pull_request")


# --- signatures and delivery ids --------------------------------------------------------


def sign(secret: bytes, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def test_published_vector_verifies() -> None:
    assert sign(VECTOR_SECRET, VECTOR_BODY) == VECTOR_HEADER
    github.verify(VECTOR_BODY, {"x-hub-signature-256": VECTOR_HEADER}, ctx(VECTOR_SECRET))


def test_upper_case_hex_verifies() -> None:
    header = "sha256=" + VECTOR_HEADER.removeprefix("sha256=").upper()
    github.verify(VECTOR_BODY, {"x-hub-signature-256": header}, ctx(VECTOR_SECRET))


def test_rotation_second_secret_matches() -> None:
    github.verify(
        VECTOR_BODY, {"x-hub-signature-256": VECTOR_HEADER}, ctx(b"new-secret", VECTOR_SECRET)
    )


def test_real_fixture_body_signed_with_its_exact_bytes() -> None:
    body = (GITHUB / "issues.opened.json").read_bytes()
    github.verify(body, {"x-hub-signature-256": sign(b"s3cret", body)}, ctx(b"s3cret"))
    with pytest.raises(SignatureError):
        github.verify(body + b"\n", {"x-hub-signature-256": sign(b"s3cret", body)}, ctx(b"s3cret"))


@pytest.mark.parametrize(
    ("body", "headers", "secrets", "message"),
    [
        (VECTOR_BODY, {"x-hub-signature-256": VECTOR_HEADER}, (b"wrong",), "none"),
        (VECTOR_BODY, {"x-hub-signature-256": VECTOR_HEADER}, (), "none"),
        (b"Hello, World?", {"x-hub-signature-256": VECTOR_HEADER}, (VECTOR_SECRET,), "none"),
        (VECTOR_BODY, {}, (VECTOR_SECRET,), "missing"),
        (VECTOR_BODY, {"x-hub-signature-256": ""}, (VECTOR_SECRET,), "missing"),
        (VECTOR_BODY, {"x-hub-signature": "sha1=abc"}, (VECTOR_SECRET,), "missing"),
        (VECTOR_BODY, {"x-hub-signature-256": VECTOR_HEADER[7:]}, (VECTOR_SECRET,), "malformed"),
        (
            VECTOR_BODY,
            {"x-hub-signature-256": "sha1=" + VECTOR_HEADER[7:]},
            (VECTOR_SECRET,),
            "malformed",
        ),
        (
            VECTOR_BODY,
            {"x-hub-signature-256": "sha256=zz" + VECTOR_HEADER[9:]},
            (VECTOR_SECRET,),
            "malformed",
        ),
        (VECTOR_BODY, {"x-hub-signature-256": VECTOR_HEADER[:-2]}, (VECTOR_SECRET,), "malformed"),
        (VECTOR_BODY, {"x-hub-signature-256": "sha256="}, (VECTOR_SECRET,), "malformed"),
    ],
)
def test_bad_signatures_are_refused(
    body: bytes, headers: dict[str, str], secrets: tuple[bytes, ...], message: str
) -> None:
    with pytest.raises(SignatureError, match=message) as raised:
        github.verify(body, headers, ctx(*secrets))
    assert "Secret to Everybody" not in str(raised.value)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (
            {"x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958"},
            "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        ),
        ({}, None),
        ({"x-github-delivery": ""}, None),
        ({"x-webhook-id": "not-github"}, None),
    ],
)
def test_delivery_id(headers: dict[str, str], expected: str | None) -> None:
    assert github.delivery_id(headers) == expected


def test_adapter_exports_the_functions() -> None:
    adapter = github.adapter
    assert adapter.source == "github"
    assert (adapter.verify, adapter.delivery_id, adapter.parse) == (
        github.verify,
        github.delivery_id,
        github.parse,
    )

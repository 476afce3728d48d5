"""GitHub. Inbound: verify `X-Hub-Signature-256`, read `X-GitHub-Delivery`, parse.

GitHub names the event in the `X-GitHub-Event` header, not the body; when the header is
not at hand (`explain`, `replay`) `infer_event_type()` recognises the payload's shape.
Only issue and pull request events carry an item's state (SPEC §3); everything else
(ping, check_suite, deployment_status, push...) parses to an `Event` without an item.

Outbound, `outbound(settings)` returns a `GitHubOutbound` that performs assign, unassign,
comment and label actions through the REST API (see the section at the end of the file).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from adapters.base import (
    GITHUB_LABEL_SEVERITY,
    Headers,
    InboundAdapter,
    SignatureError,
    VerifyContext,
    parse_time,
)
from router.core.model import Event, Kind, PayloadError, Severity, Status, WorkItem

JSON = dict[str, Any]

SIGNATURE_HEADER = "x-hub-signature-256"
DELIVERY_HEADER = "x-github-delivery"
_SIGNATURE_PREFIX = "sha256="
_DIGEST_BYTES = 32

# Event type -> the top-level key that holds the item whose state the event carries.
ITEM_EVENTS: dict[str, str] = {
    "issues": "issue",
    "issue_comment": "issue",
    "pull_request": "pull_request",
    "pull_request_review": "pull_request",
    "pull_request_review_comment": "pull_request",
    "pull_request_review_thread": "pull_request",
}

# `issues` actions after which the issue no longer exists where it was (SPEC §4: it
# counts as resolved). Pull requests cannot be deleted or transferred.
_REMOVAL_ACTIONS = frozenset({"deleted", "transferred"})

# Events whose `assigned`/`unassigned` actions name the login in a top-level `assignee`.
_ASSIGNING_EVENTS = frozenset({"issues", "pull_request"})

_STATUS: dict[str, Status] = {"open": "open", "closed": "resolved"}

# Keys at least one of which every GitHub delivery has; a body with none is not GitHub's.
_ENVELOPE_KEYS = frozenset(
    {"sender", "repository", "organization", "installation", "hook", "enterprise"}
)

# Top-level objects that describe where an event happened rather than the event itself:
# their `updated_at` is not the event's time.
_CONTEXT_KEYS = frozenset({"sender", "repository", "organization", "installation", "enterprise"})

# Shapes tried in order, most specific first: (keys that must all be present, event type).
_SHAPE_TABLE: tuple[tuple[tuple[str, ...], str], ...] = (
    (("zen", "hook"), "ping"),
    (("zen", "hook_id"), "ping"),
    (("check_suite",), "check_suite"),
    (("check_run",), "check_run"),
    (("deployment_status",), "deployment_status"),
    (("deployment",), "deployment"),
    (("workflow_run",), "workflow_run"),
    (("workflow_job",), "workflow_job"),
    (("pull_request", "review"), "pull_request_review"),
    (("pull_request", "thread"), "pull_request_review_thread"),
    (("pull_request", "comment"), "pull_request_review_comment"),
    (("pull_request",), "pull_request"),
    (("issue", "comment"), "issue_comment"),
    (("issue",), "issues"),
    (("discussion", "comment"), "discussion_comment"),
    (("discussion",), "discussion"),
    (("release",), "release"),
    (("commits", "pusher"), "push"),
    (("ref", "ref_type", "master_branch"), "create"),
    (("ref", "ref_type"), "delete"),
    (("sha", "state", "context"), "status"),
    (("forkee",), "fork"),
    (("milestone",), "milestone"),
    (("label",), "label"),
    (("member",), "member"),
    (("pages",), "gollum"),
    (("starred_at",), "star"),
)
_SHAPES = tuple((frozenset(keys), name) for keys, name in _SHAPE_TABLE)


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a body whose `X-Hub-Signature-256` no configured secret produced.

    GitHub signs the raw body with HMAC-SHA256 and sends `sha256=<hex>`; every secret in
    `ctx.secrets` is tried so a secret can be rotated without dropping deliveries.
    """
    given = _signature(headers.get(SIGNATURE_HEADER))
    for secret in ctx.secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        if hmac.compare_digest(expected, given):
            return
    raise SignatureError("X-Hub-Signature-256 matches none of the configured GitHub secrets")


def _signature(header: str | None) -> bytes:
    """Decode `sha256=<64 hex digits>`, so a malformed header is told apart from a wrong one."""
    if not header:
        raise SignatureError("X-Hub-Signature-256 header is missing")
    value = header.strip()
    if not value.startswith(_SIGNATURE_PREFIX):
        raise SignatureError("X-Hub-Signature-256 header is malformed: expected sha256=<hex>")
    try:
        digest = bytes.fromhex(value[len(_SIGNATURE_PREFIX) :])
    except ValueError:
        digest = b""
    if len(digest) != _DIGEST_BYTES:
        raise SignatureError("X-Hub-Signature-256 header is malformed: expected 64 hex digits")
    return digest


def delivery_id(headers: Headers) -> str | None:
    """Return GitHub's `X-GitHub-Delivery` GUID, which makes redeliveries duplicates."""
    return headers.get(DELIVERY_HEADER) or None


def infer_event_type(payload: Any) -> str:
    """Name the `X-GitHub-Event` a payload was sent as, for when the header is not at hand."""
    return _infer(_envelope(payload))


def _infer(body: JSON) -> str:
    """Match the body's top-level keys against the known shapes, most specific first."""
    keys = body.keys()
    for required, name in _SHAPES:
        if keys >= required:
            return name
    raise PayloadError(
        "cannot tell which GitHub event this payload is; pass the X-GitHub-Event type"
    )


def parse(payload: Any, event_type: str | None) -> Event:
    """Normalize one GitHub delivery; only issue and pull request events carry an item."""
    body = _envelope(payload)
    name = event_type or _infer(body)
    action = body.get("action")
    action = action if isinstance(action, str) else None
    full_type = f"{name}.{action}" if action else name
    actor = _login(body.get("sender"))
    item_key = ITEM_EVENTS.get(name)
    if item_key is None:
        return Event(
            source="github",
            event_type=full_type,
            occurred_at=_event_time(body, name),
            actor=actor,
            item=None,
            ignore_reason=f"a GitHub {name} event carries no issue or pull request",
            summary=f"{name.replace('_', ' ')} {action or ''}".rstrip(),
        )
    return _item_event(body, name, item_key, action, full_type, actor)


def _envelope(payload: Any) -> JSON:
    """Return the payload as a dict if it looks like a GitHub delivery, else PayloadError."""
    if not isinstance(payload, dict):
        raise PayloadError(f"a GitHub delivery is a JSON object, not {type(payload).__name__}")
    if _ENVELOPE_KEYS.isdisjoint(payload):
        raise PayloadError(
            "not a GitHub delivery: no sender, repository, organization, installation or hook"
        )
    return payload


def _item_event(
    body: JSON, name: str, item_key: str, action: str | None, full_type: str, actor: str | None
) -> Event:
    """Build the Event for an issue or pull request delivery, with the item's state."""
    obj = _object(body, item_key, name)
    on_pr = item_key == "pull_request" or obj.get("pull_request") is not None
    kind: Kind = "pull_request" if on_pr else "ticket"
    # Only `issues` actions act on the item itself; a deleted comment leaves its issue be.
    removed = name == "issues" and action in _REMOVAL_ACTIONS
    changed = _login(body.get("assignee")) if name in _ASSIGNING_EVENTS else None
    assigned = (changed,) if action == "assigned" and changed else ()
    unassigned = (changed,) if action == "unassigned" and changed else ()
    item = _work_item(body, name, obj, item_key, kind, removed, assigned, unassigned)
    return Event(
        source="github",
        event_type=full_type,
        occurred_at=item.updated_at,
        actor=actor,
        item=item,
        deleted=removed,
        assigned=assigned,
        unassigned=unassigned,
        summary=_summary(body, name, action, obj),
    )


def _work_item(
    body: JSON,
    name: str,
    obj: JSON,
    what: str,
    kind: Kind,
    removed: bool,
    assigned: tuple[str, ...],
    unassigned: tuple[str, ...],
) -> WorkItem:
    """Read an issue or pull request object into a WorkItem (SPEC §3)."""
    repo = _object(body, "repository", name)
    full_name = repo.get("full_name")
    if not isinstance(full_name, str) or not full_name:
        raise PayloadError("repository.full_name is missing")
    number = obj.get("number")
    if not isinstance(number, int) or isinstance(number, bool):
        raise PayloadError(f"{what}.number is missing")
    labels = _labels(obj.get("labels"))
    return WorkItem(
        source="github",
        id=item_id(_id(repo.get("id"), "repository"), number),
        key=f"{full_name}#{number}",
        url=_text(obj.get("html_url")) or None,
        kind=kind,
        project=full_name,
        title=_text(obj.get("title")),
        description=_text(obj.get("body")),
        labels=labels,
        priority=None,
        default_severity=_severity(labels),
        status="resolved" if removed else _status(obj.get("state"), what),
        assignees=_assignees(obj.get("assignees"), assigned, unassigned),
        reporter=_login(obj.get("user")),
        created_at=_time(obj.get("created_at"), what, "created_at"),
        updated_at=_time(obj.get("updated_at"), what, "updated_at"),
        branch=_head_branch(obj),
    )


def item_id(repository_id: str, number: int) -> str:
    """Return a GitHub item's immutable id: `<repository id>#<number>`.

    A pull request reaches firstline as `pull_request` (with `pull_request.id`) and, for
    conversation comments, as `issue_comment` (with the different `issue.id`); both carry
    the repository and the number, which stay put when the repository is renamed.
    """
    return f"{repository_id}#{number}"


def _head_branch(obj: JSON) -> str | None:
    """Return a pull request's head branch (`head.ref`), or None for an issue."""
    head = obj.get("head")
    ref = head.get("ref") if isinstance(head, dict) else None
    return ref if isinstance(ref, str) and ref else None


def _object(body: JSON, key: str, name: str) -> JSON:
    """Return body[key] as a dict, or a PayloadError naming what is missing."""
    value = body.get(key)
    if not isinstance(value, dict):
        raise PayloadError(f"GitHub {name} payload has no {key} object")
    return value


def _id(value: Any, what: str) -> str:
    """Read an immutable id (a number in GitHub's JSON) as the string WorkItem.id wants."""
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise PayloadError(f"{what}.id is missing")
    return str(value)


def _time(value: Any, what: str, field: str) -> datetime:
    """Parse a required timestamp; a missing or malformed one is a PayloadError.

    Like base.require_time, but the message is only built when it is needed: this runs
    twice per delivery on the hot path.
    """
    try:
        parsed = parse_time(value)
    except ValueError as exc:
        raise PayloadError(f"{what}.{field}: {exc}") from exc
    if parsed is None:
        raise PayloadError(f"{what}.{field} is missing")
    return parsed


def _text(value: Any) -> str:
    """Return a string field as sent, or "" for null (GitHub sends `body: null`)."""
    return value if isinstance(value, str) else ""


def _login(user: Any) -> str | None:
    """Return a user object's login, the account id firstline keys GitHub people by."""
    if isinstance(user, dict):
        login = user.get("login")
        if isinstance(login, str) and login:
            return login
    return None


def _labels(raw: Any) -> frozenset[str]:
    """Lower-case the label names, since label predicates compare case-insensitively."""
    if not isinstance(raw, list):
        return frozenset()
    names = []
    for label in raw:
        name = label.get("name") if isinstance(label, dict) else label
        if isinstance(name, str):
            names.append(name.lower())
    return frozenset(names)


def _severity(labels: frozenset[str]) -> Severity:
    """Pick the most severe `sevN`/`pN` label's severity; sev4 without one (SPEC §3)."""
    fallback: Severity = "sev4"
    if labels.isdisjoint(GITHUB_LABEL_SEVERITY):
        return fallback
    return min(
        (GITHUB_LABEL_SEVERITY[label] for label in labels if label in GITHUB_LABEL_SEVERITY),
        default=fallback,
    )


def _status(state: Any, what: str) -> Status:
    """Map GitHub's open/closed state to the normalized status."""
    status = _STATUS.get(state) if isinstance(state, str) else None
    if status is None:
        raise PayloadError(f"{what}.state {state!r} is neither open nor closed")
    return status


def _assignees(raw: Any, assigned: tuple[str, ...], unassigned: tuple[str, ...]) -> tuple[str, ...]:
    """Read the `assignees` logins, made consistent with the change the event reports.

    GitHub's documented `issues.unassigned` example still lists the removed login; the
    event itself is the better witness of who was just added or taken off.
    """
    logins: list[str] = []
    for user in raw if isinstance(raw, list) else ():
        login = _login(user)
        if login is not None and login not in unassigned and login not in logins:
            logins.append(login)
    logins.extend(login for login in assigned if login not in logins)
    return tuple(logins)


def _event_time(body: JSON, name: str) -> datetime | None:
    """Find the time of an item-less event: its own object's `updated_at`, else any other.

    Context objects (repository, sender...) are skipped: their `updated_at` says when
    they last changed, not when this event happened. None lets callers use arrival time.
    """
    own = body.get("hook" if name == "ping" else name)
    candidates = [own] if isinstance(own, dict) else []
    candidates.extend(
        value for key, value in body.items() if key not in _CONTEXT_KEYS and value is not own
    )
    for value in candidates:
        if isinstance(value, dict):
            try:
                when = parse_time(value.get("updated_at"))
            except ValueError:
                continue
            if when is not None:
                return when
    return None


def _summary(body: JSON, name: str, action: str | None, obj: JSON) -> str:
    """Describe the event in a few words for the item's timeline."""
    if name == "issue_comment":
        return f"comment {action or 'event'}"
    if name != "issues" and name != "pull_request":
        return f"{name.replace('_', ' ')} {action or ''}".strip()
    if action in ("assigned", "unassigned"):
        who = _login(body.get("assignee")) or "someone"
        return f"assigned to {who}" if action == "assigned" else f"unassigned {who}"
    if action in ("labeled", "unlabeled"):
        label = body.get("label")
        label_name = label.get("name") if isinstance(label, dict) else None
        return f"{action} {label_name}" if isinstance(label_name, str) else action
    if action == "closed" and obj.get("merged") is True:
        return "merged"
    return action or name


adapter = InboundAdapter(source="github", verify=verify, delivery_id=delivery_id, parse=parse)

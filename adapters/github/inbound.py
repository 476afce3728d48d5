"""GitHub. Inbound: parse a delivery into an Event, and assemble the inbound adapter.

GitHub names the event in the `X-GitHub-Event` header, not the body; when the header is
not at hand (`explain`, `replay`) `infer_event_type()` recognises the payload's shape.
Only issue and pull request events carry an item's state (SPEC §3); everything else
(ping, check_suite, deployment_status, push...) parses to an `Event` without an item.
Checking the headers (`signature`) runs before a delivery is stored, and reading the
item (`items`) is the same for every item event, so both live apart from this.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from adapters.base import InboundAdapter, parse_time
from adapters.github.items import JSON, login_of, required_object, work_item
from adapters.github.signature import delivery_id, verify
from router.core.model import Event, Kind, PayloadError

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
    actor = login_of(body.get("sender"))
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
    obj = required_object(body, item_key, name)
    on_pr = item_key == "pull_request" or obj.get("pull_request") is not None
    kind: Kind = "pull_request" if on_pr else "ticket"
    # Only `issues` actions act on the item itself; a deleted comment leaves its issue be.
    removed = name == "issues" and action in _REMOVAL_ACTIONS
    changed = login_of(body.get("assignee")) if name in _ASSIGNING_EVENTS else None
    assigned = (changed,) if action == "assigned" and changed else ()
    unassigned = (changed,) if action == "unassigned" and changed else ()
    item = work_item(body, name, obj, item_key, kind, removed, assigned, unassigned)
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
        who = login_of(body.get("assignee")) or "someone"
        return f"assigned to {who}" if action == "assigned" else f"unassigned {who}"
    if action in ("labeled", "unlabeled"):
        label = body.get("label")
        label_name = label.get("name") if isinstance(label, dict) else None
        return f"{action} {label_name}" if isinstance(label_name, str) else action
    if action == "closed" and obj.get("merged") is True:
        return "merged"
    return action or name


adapter = InboundAdapter(source="github", verify=verify, delivery_id=delivery_id, parse=parse)

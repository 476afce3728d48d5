"""Linear, inbound: verify `Linear-Signature` and the delivery's age, parse a webhook.

Linear puts its event type in the body (`type` and `action`), so `parse()` ignores the
header argument. Only `type: "Issue"` carries an issue's state and becomes a `WorkItem`;
every other type (Comment, Project, Reaction...) is ignored, naming the issue when the
data points at one.

Parsing is plain dict access: `parse()` runs about a hundred thousand times a second in
`replay`, so there is no schema layer here.

Outbound (the second half of this module), `LinearOutbound.perform()` assigns, unassigns,
comments and labels through the GraphQL API with httpx; `outbound(settings)` builds it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any

import orjson

from adapters.base import (
    LINEAR_SEVERITY,
    Headers,
    InboundAdapter,
    SignatureError,
    VerifyContext,
    optional_time,
    require_time,
)
from router.core.model import Event, ItemRef, PayloadError, Severity, Status, WorkItem

SIGNATURE_HEADER = "linear-signature"
DELIVERY_HEADER = "linear-delivery"

# SPEC §3: workflow state type -> normalized status. An unknown type or a missing state
# reads as open, so a new kind of state cannot hide an issue from the triggers.
_STATUS: dict[str, Status] = {
    "triage": "open",
    "backlog": "open",
    "unstarted": "open",
    "started": "in_progress",
    "completed": "resolved",
    "canceled": "resolved",
}

# Linear's own names for its priority numbers, for summaries of a priority change.
_PRIORITY_LABEL = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}

# An issue's identifier inside a linear.app URL: /issue/WEB-44/... or /issue/WEB-46#...
_URL_KEY = re.compile(r"/issue/([A-Za-z0-9]+-\d+)")


# -- verify -------------------------------------------------------------------------


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a delivery unless `Linear-Signature` matches a secret and it is recent.

    The header is the hex HMAC-SHA256 of the raw body; every configured secret is tried
    so a secret can be rotated. The body's `webhookTimestamp` (ms) must lie within
    `ctx.max_age` seconds of `ctx.now`, so a captured delivery cannot be replayed later.
    The age is checked only after the signature, when the timestamp can be trusted.
    """
    received = (headers.get(SIGNATURE_HEADER) or "").strip().lower()
    if not received:
        raise SignatureError("linear: Linear-Signature header is missing")
    if len(received) != 64 or not all(c in "0123456789abcdef" for c in received):
        raise SignatureError("linear: Linear-Signature is malformed (expected 64 hex digits)")
    if not ctx.secrets:
        raise SignatureError("linear: no webhook secret is configured")
    if not any(
        hmac.compare_digest(hmac.new(s, body, hashlib.sha256).hexdigest(), received)
        for s in ctx.secrets
    ):
        raise SignatureError("linear: Linear-Signature matches none of the configured secrets")
    _check_age(body, ctx)


def _check_age(body: bytes, ctx: VerifyContext) -> None:
    """Refuse a signed delivery whose `webhookTimestamp` is missing or too far from now.

    A signed body that is not JSON raises PayloadError instead: it is bad input (400),
    not a bad signature.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"linear: body is not JSON: {exc}") from exc
    stamp = payload.get("webhookTimestamp") if isinstance(payload, dict) else None
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise SignatureError("linear: webhookTimestamp is missing, so the age is unknown")
    age = abs(ctx.now - stamp / 1000.0)
    if age > ctx.max_age:
        raise SignatureError(
            f"linear: delivery is stale: webhookTimestamp is {age:.0f} s from now "
            f"(limit {ctx.max_age:.0f} s)"
        )


def delivery_id(headers: Headers) -> str | None:
    """Return Linear's delivery id; the caller falls back to a body hash without one."""
    return headers.get(DELIVERY_HEADER) or None


# -- parse --------------------------------------------------------------------------


def parse(payload: Any, event_type: str | None) -> Event:
    """Turn a Linear webhook body into an Event; the type is read from the body.

    Raises PayloadError naming the field when the JSON is not a Linear delivery.
    """
    if not isinstance(payload, dict):
        raise PayloadError("linear: payload is not a JSON object")
    kind, action, data = payload.get("type"), payload.get("action"), payload.get("data")
    if not isinstance(kind, str) or not kind:
        raise PayloadError("linear: type is missing; not a Linear webhook delivery")
    if not isinstance(action, str) or not action:
        raise PayloadError("linear: action is missing; not a Linear webhook delivery")
    if not isinstance(data, dict):
        raise PayloadError("linear: data is missing; not a Linear webhook delivery")
    actor = _actor(payload.get("actor"))
    name = f"{kind}.{action}"
    if kind != "Issue":
        return _other(kind, name, data, payload.get("url"), actor)
    deleted = action == "remove"
    item = _item(data, payload.get("url"), deleted)
    assigned, unassigned = _assignment(payload.get("updatedFrom"), item.assignees)
    return Event(
        source="linear",
        event_type=name,
        occurred_at=item.updated_at,
        actor=actor,
        item=item,
        deleted=deleted,
        assigned=assigned,
        unassigned=unassigned,
        summary=_summary(action, payload.get("updatedFrom"), data),
    )


def _other(kind: str, name: str, data: dict[str, Any], url: Any, actor: str | None) -> Event:
    """Ignore a delivery that is not about an issue's state, naming its issue if any."""
    issue = data.get("issue")
    issue_id = data.get("issueId") or (issue.get("id") if isinstance(issue, dict) else None)
    ref = None
    if isinstance(issue_id, str) and issue_id:
        ref = ItemRef(source="linear", id=issue_id, key=_key_from_url(url))
    return Event(
        source="linear",
        event_type=name,
        occurred_at=_time(data.get("updatedAt"), "data.updatedAt"),
        actor=actor,
        item=None,
        ref=ref,
        ignore_reason=f"a Linear {kind} delivery carries no issue state",
        summary="commented" if name == "Comment.create" else name,
    )


def _item(data: dict[str, Any], url: Any, deleted: bool) -> WorkItem:
    """Build the normalized item from an Issue's data (SPEC §3)."""
    issue_id = data.get("id")
    if not isinstance(issue_id, str) or not issue_id:
        raise PayloadError("linear: data.id is missing")
    team = data.get("team")
    key = _key(data, team, url)
    number = data.get("priority")
    assignee = _str(data, "assigneeId") or _id(data.get("assignee"))
    return WorkItem(
        source="linear",
        id=issue_id,
        key=key,
        url=url if isinstance(url, str) and url else None,
        kind="ticket",
        project=_str(team, "key") or key.rpartition("-")[0],
        title=_str(data, "title") or "",
        description=_str(data, "description") or "",
        labels=_labels(data.get("labels")),
        priority=_priority_name(data.get("priorityLabel"), number),
        default_severity=default_severity(number),
        status="resolved" if deleted else _status(data.get("state")),
        assignees=(assignee,) if assignee else (),
        reporter=_str(data, "creatorId"),
        created_at=_required_time(data.get("createdAt"), "data.createdAt"),
        updated_at=_changed_at(data, deleted),
    )


def _changed_at(data: dict[str, Any], removed: bool) -> datetime:
    """Return when the issue last changed, which orders its deliveries (SPEC §6).

    A removal keeps the `updatedAt` of the last update before it and carries its own time
    in `archivedAt`: ordered by `updatedAt` it would tie with (or sort before) the update
    it follows, and that update, arriving late, would bring the removed issue back.
    """
    updated = _required_time(data.get("updatedAt"), "data.updatedAt")
    archived = _time(data.get("archivedAt"), "data.archivedAt") if removed else None
    return max(updated, archived) if archived is not None else updated


def default_severity(priority: Any) -> Severity:
    """Map Linear's priority number to SPEC §3's default severity.

    0 is "No priority" and maps to sev4 like 4 (Low); a missing or unknown value does
    too, so an unreadable priority never pages anyone by default.
    """
    if isinstance(priority, bool) or not isinstance(priority, int | float):
        return "sev4"
    return LINEAR_SEVERITY.get(int(priority), "sev4")


def _priority_name(label: Any, number: Any) -> str | None:
    """Return the raw priority name: Linear's label, else the number as text."""
    if isinstance(label, str) and label:
        return label
    return None if number is None else str(number)


def _key(data: dict[str, Any], team: Any, url: Any) -> str:
    """Return the identifier people read: `identifier`, else team key + number.

    Older deliveries lack `identifier`; without a team object the URL still holds it.
    """
    identifier = data.get("identifier")
    if isinstance(identifier, str) and identifier:
        return identifier
    team_key, number = _str(team, "key"), data.get("number")
    if team_key and isinstance(number, int) and not isinstance(number, bool):
        return f"{team_key}-{number}"
    from_url = _key_from_url(url)
    if from_url is None:
        raise PayloadError("linear: data.identifier (or data.team.key and data.number) is missing")
    return from_url


def _status(state: Any) -> Status:
    """Read the workflow state type; a missing state or unknown type counts as open."""
    kind = state.get("type") if isinstance(state, dict) else None
    return _STATUS.get(kind, "open") if isinstance(kind, str) else "open"


def _labels(labels: Any) -> frozenset[str]:
    """Return the label names lower-cased, since scope-note matching ignores case."""
    if not isinstance(labels, list):
        return frozenset()
    return frozenset(
        label["name"].lower()
        for label in labels
        if isinstance(label, dict) and isinstance(label.get("name"), str)
    )


def _assignment(
    updated_from: Any, assignees: tuple[str, ...]
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Read an assignee change from `updatedFrom.assigneeId` (the previous assignee)."""
    if not isinstance(updated_from, dict) or "assigneeId" not in updated_from:
        return (), ()
    old = updated_from["assigneeId"]
    return assignees, (old,) if isinstance(old, str) and old else ()


def _summary(action: str, updated_from: Any, data: dict[str, Any]) -> str:
    """Describe the event in a few words for timelines."""
    if action == "create":
        return "created"
    if action == "remove":
        return "deleted"
    if not isinstance(updated_from, dict):
        return "updated" if action == "update" else action
    parts = [p for p in (_describe(f, updated_from[f], data) for f in updated_from) if p]
    return "; ".join(parts) or "updated"


def _describe(field: str, old: Any, data: dict[str, Any]) -> str | None:
    """Describe one changed field, or None for fields timelines do not show."""
    if field == "assigneeId":
        new = _str(data.get("assignee"), "name") or data.get("assigneeId")
        return f"assigned to {new}" if new else "unassigned"
    if field == "priority":
        new = _priority_name(data.get("priorityLabel"), data.get("priority"))
        was = _PRIORITY_LABEL.get(old, str(old)) if isinstance(old, int) else str(old)
        return f"priority {was} -> {new}"
    if field == "stateId":
        return f"status {_str(data.get('state'), 'name') or data.get('stateId')}"
    if field == "labelIds":
        return "labels changed"
    if field in ("title", "description"):
        return f"{field} edited"
    return None


def _actor(actor: Any) -> str | None:
    """Return who caused the event; older deliveries carry no `actor` and give None."""
    return _id(actor)


def _id(obj: Any) -> str | None:
    """Return an object's `id`, or None."""
    return _str(obj, "id")


def _str(obj: Any, field: str) -> str | None:
    """Return a non-empty string field of an object, or None."""
    if not isinstance(obj, dict):
        return None
    value = obj.get(field)
    return value if isinstance(value, str) and value else None


def _key_from_url(url: Any) -> str | None:
    """Read an issue identifier such as WEB-46 out of a linear.app URL."""
    if not isinstance(url, str):
        return None
    match = _URL_KEY.search(url)
    return match.group(1) if match else None


def _time(value: Any, what: str) -> datetime | None:
    """Read an optional timestamp, refusing one that is present but unreadable."""
    return optional_time(value, f"linear: {what}")


def _required_time(value: Any, what: str) -> datetime:
    """Read a timestamp the item cannot do without, naming the field when it is missing."""
    return require_time(value, f"linear: {what}")


adapter = InboundAdapter(source="linear", verify=verify, delivery_id=delivery_id, parse=parse)

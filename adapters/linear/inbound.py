"""Linear, inbound: parse a webhook (`signature` verifies it, its age and its delivery id).

Linear puts its event type in the body (`type` and `action`), so `parse()` ignores the
header argument. Only `type: "Issue"` carries an issue's state and becomes a `WorkItem`;
every other type (Comment, Project, Reaction...) is ignored, naming the issue when the
data points at one.

Parsing is plain dict access: `parse()` runs about a hundred thousand times a second in
`replay`, so there is no schema layer here.

The envelope (type, actor, the issue it names) and what an update changed
(`updatedFrom`) are read here; the issue's own fields in `items`, so each module knows
one part of Linear's format.

Outbound, `LinearOutbound.perform()` assigns, unassigns, comments, labels and files
review issues through the GraphQL API with httpx (see `outbound` and `client`);
`outbound(settings)` builds it.
"""

from __future__ import annotations

from typing import Any

from adapters.base import InboundAdapter
from adapters.linear.items import id_of, key_from_url, opt_str, opt_time, priority_name, work_item
from adapters.linear.signature import delivery_id, verify
from router.core.model import Event, ItemRef, PayloadError

# Linear's own names for its priority numbers, for summaries of a priority change.
_PRIORITY_LABEL = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}


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
    item = work_item(data, payload.get("url"), deleted)
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
        ref = ItemRef(source="linear", id=issue_id, key=key_from_url(url))
    return Event(
        source="linear",
        event_type=name,
        occurred_at=opt_time(data.get("updatedAt"), "data.updatedAt"),
        actor=actor,
        item=None,
        ref=ref,
        ignore_reason=f"a Linear {kind} delivery carries no issue state",
        summary="commented" if name == "Comment.create" else name,
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
        new = opt_str(data.get("assignee"), "name") or data.get("assigneeId")
        return f"assigned to {new}" if new else "unassigned"
    if field == "priority":
        new = priority_name(data.get("priorityLabel"), data.get("priority"))
        was = _PRIORITY_LABEL.get(old, str(old)) if isinstance(old, int) else str(old)
        return f"priority {was} -> {new}"
    if field == "stateId":
        return f"status {opt_str(data.get('state'), 'name') or data.get('stateId')}"
    if field == "labelIds":
        return "labels changed"
    if field in ("title", "description"):
        return f"{field} edited"
    return None


def _actor(actor: Any) -> str | None:
    """Return who caused the event; older deliveries carry no `actor` and give None."""
    return id_of(actor)


adapter = InboundAdapter(source="linear", verify=verify, delivery_id=delivery_id, parse=parse)

"""Linear, inbound: verify `Linear-Signature` and the delivery's age, parse a webhook.

Linear puts its event type in the body (`type` and `action`), so `parse()` ignores the
header argument. Only `type: "Issue"` carries an issue's state and becomes a `WorkItem`;
every other type (Comment, Project, Reaction...) is ignored, naming the issue when the
data points at one.

Parsing is plain dict access: `parse()` runs about a hundred thousand times a second in
`replay`, so there is no schema layer here.

Signatures, the envelope and what an update changed (`updatedFrom`) are read here; the
issue's own fields in `issue`, so each module knows one part of Linear's format.

Outbound, `LinearOutbound.perform()` assigns, unassigns, comments, labels and files
review issues through the GraphQL API with httpx (see `outbound` and `client`);
`outbound(settings)` builds it.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import orjson

from adapters.base import (
    Headers,
    InboundAdapter,
    SignatureError,
    VerifyContext,
)
from adapters.linear.issue import id_of, key_from_url, opt_str, opt_time, priority_name, work_item
from router.core.model import Event, ItemRef, PayloadError

SIGNATURE_HEADER = "linear-signature"
DELIVERY_HEADER = "linear-delivery"

# Linear's own names for its priority numbers, for summaries of a priority change.
_PRIORITY_LABEL = {0: "No priority", 1: "Urgent", 2: "High", 3: "Medium", 4: "Low"}


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

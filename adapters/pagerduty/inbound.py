"""PagerDuty v3 webhooks, inbound side: verify `X-PagerDuty-Signature`, read `X-Webhook-Id`, parse.

A v3 body is `{"event": {...}}` and names its own type (`event.event_type`). Only events
whose `data.type` is `incident` carry the incident's state; notes (`incident.annotated`),
status updates, responder requests and service events name the incident at most.
The adapter reports each incident's `service_id` and `incident_key` so the router can
recognise firstline's own pages (SPEC §4); it makes no such judgement itself.

Outbound (the second half of this module), `PagerDutyOutbound.perform()` pages and
resolves through Events API v2 and reassigns incidents and adds notes through REST API
v2, with the `pagerduty` package; `outbound(settings)` builds it.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from adapters.base import (
    PAGERDUTY_SEVERITY,
    PAGERDUTY_URGENCY_SEVERITY,
    Headers,
    InboundAdapter,
    SignatureError,
    VerifyContext,
    parse_time,
)
from router.core.model import Event, ItemRef, PayloadError, Severity, Status, WorkItem

JSON = dict[str, Any]

SIGNATURE_HEADER = "x-pagerduty-signature"
DELIVERY_HEADER = "x-webhook-id"
_SIGNATURE_SCHEME = "v1="
_DIGEST_BYTES = 32

_STATUS: dict[str, Status] = {
    "triggered": "open",
    "acknowledged": "acknowledged",
    "resolved": "resolved",
}

# Events whose incident assignees were just put there, so the decision can tell who did it.
_ASSIGNING_EVENTS = frozenset({"incident.triggered", "incident.reassigned"})


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a body whose `X-PagerDuty-Signature` no configured secret produced.

    The header holds one or more comma-separated `v1=<hex HMAC-SHA256>` values (several
    while PagerDuty rotates its secret); any of them matching any of `ctx.secrets`
    (several while firstline's operator rotates) is enough. Other schemes are ignored.
    """
    given = _signatures(headers.get(SIGNATURE_HEADER))
    for secret in ctx.secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        for signature in given:
            if hmac.compare_digest(expected, signature):
                return
    raise SignatureError("X-PagerDuty-Signature matches none of the configured PagerDuty secrets")


def _signatures(header: str | None) -> list[bytes]:
    """Decode every well-formed `v1=` digest in the header; none at all is malformed."""
    if not header:
        raise SignatureError("X-PagerDuty-Signature header is missing")
    digests = []
    for part in header.split(","):
        value = part.strip()
        if not value.startswith(_SIGNATURE_SCHEME):
            continue
        try:
            digest = bytes.fromhex(value[len(_SIGNATURE_SCHEME) :])
        except ValueError:
            continue
        if len(digest) == _DIGEST_BYTES:
            digests.append(digest)
    if not digests:
        raise SignatureError(
            "X-PagerDuty-Signature header is malformed: expected v1=<64 hex digits>"
        )
    return digests


def delivery_id(headers: Headers) -> str | None:
    """Return PagerDuty's `X-Webhook-Id`, which makes redeliveries duplicates."""
    return headers.get(DELIVERY_HEADER) or None


def parse(payload: Any, event_type: str | None) -> Event:
    """Normalize one v3 delivery; the body names its own type, so `event_type` is unused."""
    event = _event(payload)
    name = event["event_type"]
    occurred_at = _time(event.get("occurred_at"), "event.occurred_at")
    if occurred_at is None:
        raise PayloadError("event.occurred_at is missing")
    agent = event.get("agent")
    actor = _id(agent)
    data = event["data"]
    if data.get("type") != "incident":
        return _not_an_incident(name, data, occurred_at, actor)
    item = _incident(data, occurred_at)
    return Event(
        source="pagerduty",
        event_type=name,
        occurred_at=occurred_at,
        actor=actor,
        item=item,
        assigned=item.assignees if name in _ASSIGNING_EVENTS else (),
        summary=_summary(name, data, item, agent),
    )


def _event(payload: Any) -> JSON:
    """Return `payload["event"]` if the payload is a v3 webhook, else PayloadError."""
    if not isinstance(payload, dict):
        raise PayloadError(f"a PagerDuty delivery is a JSON object, not {type(payload).__name__}")
    event = payload.get("event")
    if not isinstance(event, dict):
        raise PayloadError("not a PagerDuty v3 webhook: no event object")
    if not isinstance(event.get("event_type"), str) or not event["event_type"]:
        raise PayloadError("PagerDuty event has no event_type")
    if not isinstance(event.get("data"), dict):
        raise PayloadError("PagerDuty event has no data object")
    return event


def _not_an_incident(name: str, data: JSON, occurred_at: datetime, actor: str | None) -> Event:
    """Build the item-less Event for notes, status updates and other non-incident data."""
    incident = data.get("incident")
    incident_id = _id(incident)
    ref = ItemRef(source="pagerduty", id=incident_id, key=incident_id) if incident_id else None
    kind = data.get("type")
    what = f"{kind} data" if isinstance(kind, str) and kind else "no incident"
    return Event(
        source="pagerduty",
        event_type=name,
        occurred_at=occurred_at,
        actor=actor,
        item=None,
        ref=ref,
        ignore_reason=f"a PagerDuty {name} event carries {what}, not the incident's state",
        summary="note added" if name == "incident.annotated" else _phrase(name),
    )


def _incident(data: JSON, occurred_at: datetime) -> WorkItem:
    """Read `event.data` of type incident into a WorkItem (SPEC §3)."""
    incident_id = _id(data)
    if incident_id is None:
        raise PayloadError("event.data.id is missing")
    service = data.get("service")
    service = service if isinstance(service, dict) else {}
    service_id = _text(service.get("id")) or None
    priority = _summary_of(data.get("priority"))
    incident_key = data.get("incident_key")
    return WorkItem(
        source="pagerduty",
        id=incident_id,
        key=incident_id,
        url=_text(data.get("html_url")) or None,
        kind="incident",
        project=_text(service.get("summary")) or None,
        title=_text(data.get("title")),
        description=_description(data),
        labels=frozenset(),
        priority=priority,
        default_severity=_severity(priority, data.get("urgency")),
        status=_status(data.get("status")),
        assignees=_assignees(data.get("assignees")),
        reporter=None,
        created_at=_time(data.get("created_at"), "event.data.created_at") or occurred_at,
        updated_at=occurred_at,
        project_aliases=frozenset((service_id.lower(),)) if service_id else frozenset(),
        reopened_at=_time(data.get("reopened_at"), "event.data.reopened_at"),
        incident_key=incident_key if isinstance(incident_key, str) and incident_key else None,
        service_id=service_id,
    )


def _id(ref: Any) -> str | None:
    """Return a PagerDuty reference's `id` (user, incident, service), or None."""
    if isinstance(ref, dict):
        value = ref.get("id")
        if isinstance(value, str) and value:
            return value
    return None


def _summary_of(ref: Any) -> str | None:
    """Return a reference's human-readable `summary` (a priority's name, a user's name)."""
    if isinstance(ref, dict):
        value = ref.get("summary")
        if isinstance(value, str) and value:
            return value
    return None


def _text(value: Any) -> str:
    """Return a string field as sent, or "" for null or a missing field."""
    return value if isinstance(value, str) else ""


def _time(value: Any, what: str) -> datetime | None:
    """Parse an optional timestamp; a malformed one is a PayloadError naming the field.

    base.require_time would do for the required ones, but costs three times as much on
    this hot path.
    """
    try:
        return parse_time(value)
    except ValueError as exc:
        raise PayloadError(f"{what}: {exc}") from exc


def _description(data: JSON) -> str:
    """Return the incident's description or body details when the payload has them."""
    description = data.get("description")
    if isinstance(description, str):
        return description
    body = data.get("body")
    return _text(body.get("details")) if isinstance(body, dict) else ""


def _severity(priority: str | None, urgency: Any) -> Severity:
    """Map priority P1..P5, else urgency high/low, else sev4 (SPEC §3 defaults)."""
    if priority is not None:
        by_priority = PAGERDUTY_SEVERITY.get(priority.lower())
        if by_priority is not None:
            return by_priority
    if isinstance(urgency, str):
        by_urgency = PAGERDUTY_URGENCY_SEVERITY.get(urgency.lower())
        if by_urgency is not None:
            return by_urgency
    return "sev4"


def _status(status: Any) -> Status:
    """Map triggered/acknowledged/resolved to the normalized status."""
    normalized = _STATUS.get(status) if isinstance(status, str) else None
    if normalized is None:
        raise PayloadError(f"event.data.status {status!r} is not a PagerDuty incident status")
    return normalized


def _assignees(raw: Any) -> tuple[str, ...]:
    """Return the assigned users' ids, the accounts the scope note maps to people."""
    ids = []
    for user in raw if isinstance(raw, list) else ():
        user_id = _id(user)
        if user_id is not None:
            ids.append(user_id)
    return tuple(ids)


def _phrase(name: str) -> str:
    """Turn `incident.priority_updated` into "priority updated" for timelines."""
    return name.removeprefix("incident.").replace("_", " ")


def _summary(name: str, data: JSON, item: WorkItem, agent: Any) -> str:
    """Describe an incident event in a few words: "acknowledged by X", "priority P2"..."""
    if name == "incident.acknowledged":
        return f"acknowledged by {_summary_of(agent) or _id(agent) or 'someone'}"
    if name == "incident.priority_updated":
        return f"priority {item.priority or 'none'}"
    if name in ("incident.reassigned", "incident.escalated"):
        names = ", ".join(_names(data.get("assignees"))) or "nobody"
        return f"{_phrase(name)} to {names}"
    if name == "incident.delegated":
        policy = _summary_of(data.get("escalation_policy"))
        return f"delegated to {policy}" if policy else "delegated"
    return _phrase(name)


def _names(raw: Any) -> list[str]:
    """Return the assignees' display names (ids where a name is missing)."""
    if not isinstance(raw, list):
        return []
    return [name for name in (_summary_of(u) or _id(u) for u in raw) if name is not None]


adapter = InboundAdapter(source="pagerduty", verify=verify, delivery_id=delivery_id, parse=parse)

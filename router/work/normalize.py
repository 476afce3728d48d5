"""Normalize a stored delivery: the vendor's adapter turns its raw body into an Event.

Both the worker and `replay --from-db` read the inbox through `parse_delivery`, so a
replay sees exactly what the service decided on.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import Connection, select

from adapters import ADAPTERS
from router.core.model import SOURCES, Event, PayloadError
from router.core.simulate import Delivery
from router.db.tables import inbox


def parse_delivery(source: str, event_type: str | None, body: bytes,
                   received_at: datetime) -> Event:
    """Parse a stored delivery; a payload no adapter understands is decided `ignore`."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r} in the inbox")
    try:
        return ADAPTERS[source].parse(orjson.loads(body), event_type)
    except (orjson.JSONDecodeError, PayloadError) as exc:
        return Event(source=source, event_type=event_type or "unknown",
                     occurred_at=received_at, actor=None, item=None,
                     ignore_reason=f"not an event firstline understands: {exc}")


def stored_deliveries(conn: Connection, since: datetime | None = None,
                      limit: int | None = None) -> list[Delivery]:
    """Read stored deliveries received since `since` (all when None) as replay input,
    oldest first; with `limit`, only the newest `limit` of them."""
    stmt = select(inbox.c.id, inbox.c.source, inbox.c.event_type, inbox.c.body,
                  inbox.c.received_at).order_by(inbox.c.id.desc())
    if since is not None:
        stmt = stmt.where(inbox.c.received_at >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = conn.execute(stmt).all()
    return [Delivery(f"inbox:{r.id}", parse_delivery(r.source, r.event_type, r.body,
                                                     r.received_at))
            for r in reversed(rows)]

"""Normalize a stored delivery: the vendor's adapter turns its raw body into an Event.

Both the worker and `replay --from-db` read the inbox through `parse_delivery`, so a
replay sees exactly what the service decided on.
"""

from __future__ import annotations

from datetime import datetime

import orjson

from adapters import ADAPTERS
from router.core.model import SOURCES, Event, PayloadError


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

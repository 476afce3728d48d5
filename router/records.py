"""The tables that record what was decided: items, decisions, timers, escalations, charges.

They live in `router.store.metadata` beside the inbox (migration 0002); `router.dbledger`
reads and writes them in the worker's transaction.

`charges` holds every hour counted against the CTO's weekly cap: CTO-owned work by its
line's cost (one row per item and week) and each escalation by its page's
acknowledged->resolved time (one row per escalation, `source` "page", 1h until known).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from router.ledger import DEFAULT_PAGE_HOURS
from router.model import WorkItem
from router.store import BigId, UTCDateTime, metadata

items = Table(
    "items", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("state", Text, nullable=False),  # the newest WorkItem, as JSON
    Column("history", Text, nullable=False),  # router.history.history_to_json
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "item_id"),
)

decisions = Table(
    "decisions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("inbox_id", BigId, nullable=True, unique=True),  # one decision per delivery
    Column("timer_key", String(400), nullable=True, unique=True),  # one per timer firing
    Column("delivery_id", String(255), nullable=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=True),
    Column("item_key", String(255), nullable=True),
    Column("event_type", String(100), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("owner", String(100), nullable=True),
    Column("scope_line", Text, nullable=True),
    Column("severity", String(8), nullable=True),
    Column("triggers", Text, nullable=False),  # JSON list of trigger ids that fired
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("scope_hash", String(64), nullable=False),
    Column("event_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("cap_hours", Float, nullable=False, server_default="0"),
    Column("exception", Boolean, nullable=False, server_default="0"),
    Column("handed_back", Boolean, nullable=False, server_default="0"),
    Column("assigner", String(255), nullable=True),
    Index(None, "event_at"),
    Index(None, "source", "item_key"),
)

timers = Table(
    "timers", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("armed", Boolean, nullable=False),
    UniqueConstraint("source", "item_id", "trigger_id"),
    Index(None, "armed", "due_at"),
)

escalations = Table(
    "escalations", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(400), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # open | resolved
    Column("decision_id", BigId, nullable=False),
    Column("paged_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Index(None, "dedup_key", "status"),
    Index(None, "paged_at"),
)

escalation_items = Table(
    "escalation_items", metadata,
    Column("escalation_id", BigId, primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("item_key", String(255), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
)

charges = Table(
    "charges", metadata,
    Column("week_start", Date, primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("hours", Float, nullable=False),
    Column("decision_id", BigId, nullable=False),
)


def item_to_json(item: WorkItem) -> str:
    # orjson reads the dataclass itself (dataclasses.asdict deep-copies every field, a
    # quarter of the worker's time); sets become sorted lists.
    return orjson.dumps(item, default=_sorted_set).decode()


def _sorted_set(value: Any) -> list[Any]:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} in an item's state")


def item_from_json(text: str) -> WorkItem:
    data: dict[str, Any] = orjson.loads(text)
    for name in ("created_at", "updated_at", "reopened_at"):
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    data["labels"] = frozenset(data["labels"])
    data["project_aliases"] = frozenset(data["project_aliases"])
    data["assignees"] = tuple(data["assignees"])
    return WorkItem(**data)


def page_hours(acknowledged: datetime | None, resolved: datetime | None) -> float:
    """Return an escalation's CTO time: acknowledged to resolved, else the default hour."""
    if acknowledged and resolved and resolved >= acknowledged:
        return (resolved - acknowledged).total_seconds() / 3600.0
    return DEFAULT_PAGE_HOURS



OUTBOX_STATUSES = ("pending", "done", "dead", "shadow")

outbox = Table(
    "outbox", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("decision_id", BigId, nullable=False),
    Column("type", String(32), nullable=False),
    Column("target", Text, nullable=False),  # adapters.base.Target as JSON
    Column("item", String(300), nullable=True),  # "<source>:<item id>" of the target
    Column("action", Text, nullable=False),  # router.model.Action.as_dict() as JSON
    Column("status", String(16), nullable=False),  # pending | done | dead | shadow
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    Index(None, "status", "next_at"),
    Index(None, "decision_id"),
    Index(None, "item", "status", "id"),  # an item's earlier pending actions (router.act)
    Index(None, "status", "id"),  # the claim: pending actions in id order (router.act)
)

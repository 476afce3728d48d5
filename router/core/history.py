"""Carry what is known about an item from one event to the next (the per-item ledger).

`remember(history, event, decision)` is pure and is used both by `replay` (in memory) and
by the worker (stored as JSON per item), so both learn the same facts the same way.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from router.core.model import Decision, Event, History


def remember(history: History, event: Event, decision: Decision) -> History:
    """Return the item's history after `event` was decided as `decision`."""
    item = event.item
    if item is None:
        return history
    first_sight = history.newest_at is None
    newest = history.newest_at
    if event.occurred_at and (newest is None or event.occurred_at > newest):
        newest = event.occurred_at
    created = item.created_at if history.created_at is None else min(history.created_at,
                                                                      item.created_at)
    return replace(
        history,
        newest_at=newest,
        created_at=created,
        held_since=_held_since(history, event, decision, first_sight),
        assigned_by=_assigned_by(history, event, first_sight),
        handed_away=history.handed_away or any(a.remove for a in decision.actions),
        owned=history.owned or decision.owner_minutes is not None,
    )


def _held_since(history: History, event: Event, decision: Decision,
                first_sight: bool) -> dict[str, datetime]:
    """Keep each timed trigger's stretch start while its match holds; drop it when it stops."""
    entries = decision.evidence.get("triggers")
    if not entries:
        return history.held_since
    out: dict[str, datetime] = {}
    for entry in entries:
        if not entry["held"] or "clock_start" not in entry:
            continue  # only timed triggers whose match holds keep a clock
        start = history.held_since.get(entry["id"])
        if start is None:
            assert event.item is not None
            start = event.item.created_at if first_sight else (
                event.occurred_at or event.item.updated_at)
        out[entry["id"]] = start
    return out


def _assigned_by(history: History, event: Event, first_sight: bool) -> dict[str, str | None]:
    assert event.item is not None
    current = {a.lower() for a in event.item.assignees}
    out = {a: by for a, by in history.assigned_by.items() if a in current}
    for account in event.assigned:
        out[account.lower()] = event.actor
    if first_sight:
        for account in current:
            out.setdefault(account, event.actor)
    return out


def history_to_json(history: History) -> dict[str, Any]:
    """Serialise the per-item part of a history (the ledger part is recomputed)."""
    return {
        "newest_at": history.newest_at.isoformat() if history.newest_at else None,
        "created_at": history.created_at.isoformat() if history.created_at else None,
        "held_since": {k: v.isoformat() for k, v in history.held_since.items()},
        "assigned_by": history.assigned_by,
        "handed_away": history.handed_away,
        "owned": history.owned,
    }


def history_from_json(data: dict[str, Any]) -> History:
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return History(
        newest_at=when(data.get("newest_at")),
        created_at=when(data.get("created_at")),
        held_since={k: datetime.fromisoformat(v) for k, v in data.get("held_since", {}).items()},
        assigned_by=dict(data.get("assigned_by", {})),
        handed_away=bool(data.get("handed_away", False)),
        owned=bool(data.get("owned", False)),
    )

"""Escalations: the list, one escalation, its items, and the outbox actions about it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from router.db.tables import escalation_items, escalations, outbox


def list_escalations(conn: Connection, limit: int, state: str | None = None,
                     before: int | None = None) -> list[Any]:
    """Return escalations newest first (`state`: open or resolved; `before`: ids below)."""
    stmt = select(escalations).order_by(escalations.c.id.desc()).limit(limit)
    if state is not None:
        stmt = stmt.where(escalations.c.status == state)
    if before is not None:
        stmt = stmt.where(escalations.c.id < before)
    return list(conn.execute(stmt).all())


def open_escalations(conn: Connection, limit: int) -> tuple[int, list[Any]]:
    """Return how many escalations are open, and the `limit` oldest of them."""
    is_open = escalations.c.status == "open"
    total = conn.execute(select(func.count()).where(is_open)).scalar_one()
    rows = conn.execute(select(escalations).where(is_open)
                        .order_by(escalations.c.paged_at, escalations.c.id).limit(limit)).all()
    return int(total), list(rows)


def escalation(conn: Connection, escalation_id: int) -> Any:
    return conn.execute(select(escalations).where(
        escalations.c.id == escalation_id)).first()


def members(conn: Connection, escalation_ids: Sequence[int]) -> dict[int, list[Any]]:
    """Return each escalation's items (source, item_id, item_key, open, joined_at), in
    the order they joined, with one query for all of them."""
    out: dict[int, list[Any]] = {i: [] for i in escalation_ids}
    if not escalation_ids:
        return out
    rows = conn.execute(select(escalation_items).where(
        escalation_items.c.escalation_id.in_(list(escalation_ids)))
        .order_by(escalation_items.c.joined_at, escalation_items.c.item_key)).all()
    for row in rows:
        out[row.escalation_id].append(row)
    return out


def escalation_actions(conn: Connection, row: Any, items: Sequence[Any]) \
        -> list[Any]:
    """Return the outbox actions about an escalation: those of the decision that paged,
    and every later action on its items (comments, assignments, resolving the page)."""
    keys = [f"{m.source}:{m.item_id}" for m in items]
    stmt = select(outbox).where(
        (outbox.c.decision_id == row.decision_id)
        | (outbox.c.item.in_(keys) & (outbox.c.created_at >= row.paged_at))
    ).order_by(outbox.c.id)
    return list(conn.execute(stmt).all())

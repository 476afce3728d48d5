"""Escalations: the list (filtered, a page at a time), one escalation, its items, the
outbox actions about it, and the shape the read API and `firstline escalations` show.

Each escalation carries its page's real state (`page_state`, kept in step with the
performer by router.db.pages): `shadow` never sent (shadow mode), `pending` queued or
retrying, `sent` accepted by PagerDuty (`page_sent_at`), `dead` given up.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from router.core.ledger import PAGE_STATES
from router.db.tables import escalation_items, escalations, outbox

STATES = ("open", "resolved", "closed")


@dataclass(frozen=True, slots=True)
class Filter:
    """Which escalations to list, newest first; `cursor` continues an earlier page."""

    state: str | None = None
    trigger: str | None = None
    page: str | None = None
    since: datetime | None = None
    limit: int = 100
    cursor: int | None = None

    def problems(self) -> list[str]:
        """Return what is wrong with the filter, one message per field."""
        found = []
        if self.state is not None and self.state not in STATES:
            found.append(f"state {self.state!r}: one of {', '.join(STATES)}")
        if self.page is not None and self.page not in PAGE_STATES:
            found.append(f"page {self.page!r}: one of {', '.join(PAGE_STATES)}")
        return found


def list_escalations(conn: Connection, wanted: Filter) -> tuple[list[Any], int | None]:
    """Return a page of escalation rows (newest first) and the cursor of the next, if any."""
    stmt = select(escalations).order_by(escalations.c.id.desc()).limit(wanted.limit + 1)
    if wanted.state is not None:
        stmt = stmt.where(escalations.c.status == wanted.state)
    if wanted.trigger is not None:
        stmt = stmt.where(escalations.c.trigger_id == wanted.trigger)
    if wanted.page is not None:
        stmt = stmt.where(escalations.c.page_state == wanted.page)
    if wanted.since is not None:
        stmt = stmt.where(escalations.c.paged_at >= wanted.since)
    if wanted.cursor is not None:
        stmt = stmt.where(escalations.c.id < wanted.cursor)
    rows = list(conn.execute(stmt).all())
    more = len(rows) > wanted.limit
    rows = rows[:wanted.limit]
    return rows, (rows[-1].id if more else None)


def open_escalations(conn: Connection, limit: int) -> tuple[int, list[Any]]:
    """Return how many escalations are open, and the `limit` oldest of them."""
    is_open = escalations.c.status == "open"
    total = conn.execute(select(func.count()).where(is_open)).scalar_one()
    rows = conn.execute(select(escalations).where(is_open)
                        .order_by(escalations.c.paged_at, escalations.c.id).limit(limit)).all()
    return int(total), list(rows)


def escalation(conn: Connection, escalation_id: int) -> Any:
    """Return one escalation's row, or None when there is no such id."""
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


def describe(conn: Connection, rows: Sequence[Any]) -> list[dict[str, Any]]:
    """Return escalation rows as the read API shows them, reading their pages, review
    tickets and items at once."""
    if not rows:
        return []
    pages = {r.decision_id: r for r in conn.execute(
        select(outbox.c.id, outbox.c.decision_id, outbox.c.last_error).where(
            outbox.c.type == "page", outbox.c.decision_id.in_([r.decision_id for r in rows])))}
    review_ids = [r.review_action_id for r in rows if r.review_action_id is not None]
    reviews = {r.id: r.status for r in conn.execute(
        select(outbox.c.id, outbox.c.status).where(outbox.c.id.in_(review_ids)))} \
        if review_ids else {}
    items = members(conn, [r.id for r in rows])
    return [_escalation(r, pages.get(r.decision_id), reviews, items[r.id]) for r in rows]


def _escalation(row: Any, page: Any, reviews: dict[int, str],
                items: list[Any]) -> dict[str, Any]:
    review = None
    if row.review_action_id is not None:
        review = {"state": review_state(reviews.get(row.review_action_id)),
                  "action_id": row.review_action_id, "key": row.review_key,
                  "url": row.review_url}
    return {
        "id": row.id, "trigger": row.trigger_id, "dedup_key": row.dedup_key,
        "status": row.status, "decision_id": row.decision_id,
        "paged_at": _iso(row.paged_at), "acknowledged_at": _iso(row.acknowledged_at),
        "resolved_at": _iso(row.resolved_at), "closed_at": _iso(row.closed_at),
        "page": {"state": row.page_state, "sent_at": _iso(row.page_sent_at),
                 "action_id": page.id if page is not None else None,
                 "error": page.last_error if page is not None and row.page_state == "dead"
                 else None},
        "review": review,
        "items": [{"source": m.source, "key": m.item_key, "open": m.open} for m in items],
    }


def review_state(outbox_status: str | None) -> str:
    """Name a review ticket's state after its action: filed, pending, dead or shadow."""
    if outbox_status is None:
        return "missing"
    return "filed" if outbox_status == "done" else outbox_status


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None

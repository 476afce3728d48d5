"""Decisions: the filtered, paged list, one decision, its actions, and item titles."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, Select, cast, func, select, tuple_
from sqlalchemy.dialects.postgresql import JSONB

from router.db.tables import decisions, inbox, items, outbox

# The list leaves out the large columns (evidence, actions, reason).
LIST_COLUMNS = (decisions.c.id, decisions.c.delivery_id, decisions.c.source,
                decisions.c.item_id, decisions.c.item_key, decisions.c.outcome,
                decisions.c.owner, decisions.c.scope_line, decisions.c.triggers,
                decisions.c.event_at, decisions.c.decided_at)


@dataclass(frozen=True, slots=True)
class DecisionFilter:
    """What to list; every field left None matches everything."""

    source: str | None = None
    outcome: str | None = None
    trigger: str | None = None
    owner: str | None = None
    scope_line: str | None = None
    item: str | None = None  # an item key, exactly
    text: str | None = None  # part of the item's current key or title, any case
    since: datetime | None = None  # event time, inclusive
    until: datetime | None = None  # event time, exclusive


@dataclass(frozen=True, slots=True)
class DecisionPage:
    rows: list[Any]  # newest first
    older: bool  # more rows past the last one
    newer: bool  # more rows before the first one (only known when paging back)


def list_decisions(conn: Connection, where: DecisionFilter, limit: int,
                   before: int | None = None, after: int | None = None) -> DecisionPage:
    """Return up to `limit` decisions, newest first: those with ids below `before`, or,
    paging back, the ones just above `after`."""
    stmt = _filtered(select(*LIST_COLUMNS), where, conn.dialect.name)
    if after is not None:
        stmt = stmt.where(decisions.c.id > after).order_by(decisions.c.id).limit(limit + 1)
        rows = list(conn.execute(stmt).all())
        newer = len(rows) > limit
        return DecisionPage(list(reversed(rows[:limit])), older=True, newer=newer)
    if before is not None:
        stmt = stmt.where(decisions.c.id < before)
    rows = list(conn.execute(stmt.order_by(decisions.c.id.desc()).limit(limit + 1)).all())
    return DecisionPage(rows[:limit], older=len(rows) > limit, newer=before is not None)


def _filtered(stmt: Select[Any], where: DecisionFilter, dialect: str) -> Select[Any]:
    c = decisions.c
    equal = ((c.source, where.source), (c.outcome, where.outcome), (c.owner, where.owner),
             (c.scope_line, where.scope_line), (c.item_key, where.item))
    for column, value in equal:
        if value is not None:
            stmt = stmt.where(column == value)
    if where.trigger is not None:  # a JSON list of ids: match the quoted id
        # Only escalations have triggers that fired (router.core.decide): saying so lets
        # the (outcome, id) index narrow the scan.
        stmt = stmt.where(c.outcome == "escalate", c.triggers.contains(
            orjson.dumps(where.trigger).decode(), autoescape=True))
    if where.since is not None:
        stmt = stmt.where(c.event_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(c.event_at < where.until)
    if where.text:  # the items' current keys and titles: far fewer rows than decisions
        found = select(items.c.source, items.c.item_id).where(
            items.c.key.icontains(where.text, autoescape=True)
            | _title(dialect).icontains(where.text, autoescape=True))
        stmt = stmt.where(tuple_(c.source, c.item_id).in_(found))
    return stmt


def _title(dialect: str) -> ColumnElement[str]:
    """Return the title inside `items.state` (a WorkItem as JSON text)."""
    if dialect == "postgresql":
        title: ColumnElement[str] = cast(items.c.state, JSONB)["title"].astext
        return title
    # SQLite: no CAST to JSON, which SQLite would take as a cast to a number.
    return func.json_extract(items.c.state, "$.title")


@dataclass(frozen=True, slots=True)
class ItemBrief:
    title: str
    url: str | None


def item_briefs(conn: Connection, ids: Iterable[tuple[str, str | None]]) \
        -> dict[tuple[str, str], ItemBrief]:
    """Return the newest title and link of each (source, item id)."""
    wanted = {(s, i) for s, i in ids if i is not None}
    if not wanted:
        return {}
    rows = conn.execute(select(items.c.source, items.c.item_id, items.c.state).where(
        tuple_(items.c.source, items.c.item_id).in_(sorted(wanted)))).all()
    out = {}
    for r in rows:
        state = orjson.loads(r.state)
        out[(r.source, r.item_id)] = ItemBrief(str(state.get("title") or ""), state.get("url"))
    return out


def decision(conn: Connection, decision_id: int) -> Any:
    return conn.execute(select(decisions).where(decisions.c.id == decision_id)).first()


def decision_actions(conn: Connection, decision_ids: Sequence[int]) -> list[Any]:
    """Return the outbox rows of these decisions, in the order they were queued."""
    return list(conn.execute(select(outbox).where(
        outbox.c.decision_id.in_(list(decision_ids))).order_by(outbox.c.id)).all())


def delivery(conn: Connection, inbox_id: int) -> Any:
    """Return a stored delivery (None once retention removed it)."""
    return conn.execute(select(inbox.c.id, inbox.c.source, inbox.c.event_type, inbox.c.body,
                               inbox.c.received_at).where(inbox.c.id == inbox_id)).first()


def item_state(conn: Connection, source: str, item_id: str) -> str | None:
    """Return the item's newest state as stored (WorkItem JSON), if known."""
    return conn.execute(select(items.c.state).where(
        items.c.source == source, items.c.item_id == item_id)).scalar()

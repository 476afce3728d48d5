"""A week at a glance: the CTO's hours per week, hand-backs and deferrals in a span."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, func, select

from router.db.tables import charges, decisions

_BRIEF = (decisions.c.id, decisions.c.source, decisions.c.item_id, decisions.c.item_key,
          decisions.c.owner, decisions.c.scope_line, decisions.c.assigner,
          decisions.c.event_at, decisions.c.reason)


def hours_by_week(conn: Connection, first: date, last: date) -> dict[date, float]:
    """Return the hours charged to the CTO's cap for each week from `first` to `last`
    (week-start dates, inclusive); weeks with none are left out."""
    rows = conn.execute(select(charges.c.week_start, func.sum(charges.c.hours))
                        .where(charges.c.week_start >= first, charges.c.week_start <= last)
                        .group_by(charges.c.week_start)).all()
    return {week: float(hours or 0) for week, hours in rows}


def handed_back(conn: Connection, start: datetime, end: datetime) -> list[Any]:
    """Return the decisions that handed work back from the CTO, by event time in
    [start, end), newest first; `assigner` says who had put it on the CTO."""
    return list(conn.execute(select(*_BRIEF).where(
        decisions.c.handed_back.is_(True), decisions.c.event_at >= start,
        decisions.c.event_at < end).order_by(decisions.c.event_at.desc())).all())


def deferred(conn: Connection, start: datetime, end: datetime) -> list[Any]:
    """Return the decisions that deferred CTO work to a later week, by event time."""
    return list(conn.execute(select(*_BRIEF).where(
        decisions.c.outcome == "defer", decisions.c.event_at >= start,
        decisions.c.event_at < end).order_by(decisions.c.event_at.desc())).all())

"""A week at a glance: the CTO's hours per week, hand-backs and deferrals in a span."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, func, literal_column, select

from router.db.tables import charges, decisions

# Written as the partial indexes' own conditions (router.db.tables), so both databases
# use them: a bound parameter in their place would not match.
_HANDED_BACK: ColumnElement[bool] = literal_column("decisions.handed_back")
_DEFERRED: ColumnElement[bool] = literal_column("decisions.outcome = 'defer'")
_BRIEF = (decisions.c.id, decisions.c.source, decisions.c.item_id, decisions.c.item_key,
          decisions.c.owner, decisions.c.scope_line, decisions.c.assigner,
          decisions.c.event_at, decisions.c.reason, decisions.c.reporter)


def hours_by_week(conn: Connection, first: date, last: date) -> dict[date, float]:
    """Return the hours charged to the CTO's cap for each week from `first` to `last`
    (week-start dates, inclusive); weeks with none are left out."""
    rows = conn.execute(select(charges.c.week_start, func.sum(charges.c.hours))
                        .where(charges.c.week_start >= first, charges.c.week_start <= last)
                        .group_by(charges.c.week_start)).all()
    return {week: float(hours or 0) for week, hours in rows}


def handed_back(conn: Connection, start: datetime, end: datetime, limit: int) \
        -> tuple[int, list[Any]]:
    """Return how many decisions handed work back from the CTO by event time in
    [start, end), and the newest `limit`; `assigner` says who had put it on the CTO
    (`reporter`: the item's reporter as decided, for when nobody knows)."""
    return _counted(conn, _HANDED_BACK, start, end, limit)


def deferred(conn: Connection, start: datetime, end: datetime, limit: int) \
        -> tuple[int, list[Any]]:
    """Return how many decisions deferred CTO work to a later week, and the newest."""
    return _counted(conn, _DEFERRED, start, end, limit)


def _counted(conn: Connection, which: ColumnElement[bool], start: datetime, end: datetime,
             limit: int) -> tuple[int, list[Any]]:
    when = (decisions.c.event_at >= start) & (decisions.c.event_at < end)
    total = conn.execute(select(func.count()).where(which, when)).scalar_one()
    rows = conn.execute(select(*_BRIEF).where(which, when)
                        .order_by(decisions.c.event_at.desc()).limit(limit)).all()
    return int(total), list(rows)

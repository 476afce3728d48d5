"""A week at a glance: the CTO's hours per week, hand-backs and deferrals in a span."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import orjson
from sqlalchemy import ColumnElement, Connection, func, literal_column, select, tuple_

from router.db.tables import charges, decisions, items

# Written as the partial indexes' own conditions (router.db.tables), so both databases
# use them: a bound parameter in their place would not match.
_HANDED_BACK: ColumnElement[bool] = literal_column("decisions.handed_back")
_DEFERRED: ColumnElement[bool] = literal_column("decisions.outcome = 'defer'")
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


def handed_back(conn: Connection, start: datetime, end: datetime, limit: int) \
        -> tuple[int, list[Any]]:
    """Return how many decisions handed work back from the CTO by event time in
    [start, end), and the newest `limit`; `assigner` says who had put it on the CTO."""
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


def reporters(conn: Connection, rows: list[Any]) -> dict[tuple[str, str], str]:
    """Return the reporter account of each listed decision's item whose assigner is not
    known, by (source, item_id), from the item's newest state (as the monthly review
    counts them: router.reviews.figures.senders)."""
    wanted = {(r.source, r.item_id) for r in rows if r.assigner is None}
    if not wanted:
        return {}
    stmt = select(items.c.source, items.c.item_id, items.c.state).where(
        tuple_(items.c.source, items.c.item_id).in_(sorted(wanted)))
    found = {}
    for source, item_id, state in conn.execute(stmt):
        reporter = orjson.loads(state).get("reporter")
        if reporter:
            found[(source, item_id)] = str(reporter)
    return found

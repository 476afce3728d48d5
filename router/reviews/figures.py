"""The monthly review's counts, aggregated in the database.

Each function answers one question with one statement over the month's decisions and
returns small results: counts per group, the percentiles' values. The month index
(`ix_decisions_month`, led by `event_at`) holds every column they read, so no query
reads a decision's row with its evidence; nothing loads every decision into Python
(bench/report.py). `router.reviews.rows` fetches the few rows behind the figures.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    func,
    literal,
    or_,
    select,
)

from router.db.tables import charges, decisions
from router.reviews.periods import Month, nearest_rank

D = decisions.c
# The item's time reached the CTO: paged, assigned to the CTO, CTO-owned or deferred.
# How far a decision's time may be from its event's (late deliveries, clock skew).
LATE = timedelta(days=2)
REACHED = or_(D.outcome.in_(("escalate", "defer")), D.handed_back.is_(True),
              D.exception.is_(True), D.cap_hours > 0)


def in_month(month: Month) -> ColumnElement[bool]:
    """Decisions whose event belongs to the month."""
    return and_(D.event_at >= month.begins, D.event_at < month.ends)


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over every decision of the month, from one grouped scan of the index."""

    by_outcome: dict[str, int]
    handed_back_by_source: dict[str, int]
    exceptions: int


def tally(conn: Connection, month: Month) -> Tally:
    """Count decisions by outcome, hand-backs by source and the CTO's own exceptions."""
    keys = (D.outcome, D.source, D.handed_back, D.exception)
    stmt = select(*keys, func.count()).where(in_month(month)).group_by(*keys)
    by_outcome: Counter[str] = Counter()
    handed: Counter[str] = Counter()
    exceptions = 0
    for outcome, source, handed_back, exception, n in conn.execute(stmt):
        by_outcome[outcome] += n
        handed[source] += n if handed_back else 0
        exceptions += n if exception else 0
    return Tally(dict(by_outcome), {s: n for s, n in handed.items() if n}, exceptions)


@dataclass(frozen=True, slots=True)
class Sent:
    """Work someone else put on the CTO: a hand-back, or a put-back after one."""

    source: str
    who: str | None  # the assigner (person key or account); None: not known
    handed_back: bool
    count: int
    reporter: bool = False  # `who` is the item's reporter account (assigner not known)


def senders(conn: Connection, month: Month, cto: str) -> list[Sent]:
    """Count hand-backs and put-backs (charged to the cap, assigned to the CTO by someone,
    not CTO-owned) by source and by who put the work on the CTO; a hand-back whose
    assigner is not known counts its item's reporter (`who` None: neither is known)."""
    put_back = and_(D.cap_hours > 0, D.assigner.is_not(None), D.exception.is_(False),
                    D.owner != cto)
    stmt = (select(D.source, D.assigner, D.handed_back, func.count())
            .where(in_month(month), or_(D.handed_back.is_(True), put_back))
            .group_by(D.source, D.assigner, D.handed_back))
    found = [Sent(source, who, bool(back), n) for source, who, back, n in conn.execute(stmt)]
    if any(s.who is None for s in found):
        found = [s for s in found if s.who is not None] + _reporters(conn, month)
    return found


def _reporters(conn: Connection, month: Month) -> list[Sent]:
    """Count hand-backs whose assigner is not known by the item's reporter account, as
    the decision saw it."""
    stmt = (select(D.source, D.reporter, func.count())
            .where(in_month(month), D.handed_back.is_(True), D.assigner.is_(None))
            .group_by(D.source, D.reporter))
    return [Sent(source, who, True, n, reporter=True) for source, who, n in conn.execute(stmt)]


def fired(conn: Connection, month: Month) -> Counter[str]:
    """Count, per trigger, the decisions it fired on (escalations carry their list)."""
    stmt = (select(D.triggers, func.count())
            .where(in_month(month), D.outcome == "escalate").group_by(D.triggers))
    out: Counter[str] = Counter()
    for listed, n in conn.execute(stmt):
        for trigger in orjson.loads(listed):
            out[trigger] += n
    return out


@dataclass(frozen=True, slots=True)
class LineCount:
    line: str
    items: int  # distinct items decided under the line
    reached_cto: int  # of those, items whose time reached the CTO under it
    deferred: int
    hours: float  # CTO hours charged under it (CTO-owned work, exceptions, put-backs)


def lines(conn: Connection, month: Month) -> dict[str, LineCount]:
    """Count, per owner line, the items it took and how many of them reached the CTO:
    first per line and item, then per line."""
    per_item = (select(D.scope_line.label("line"),
                       func.max(case((REACHED, 1), else_=0)).label("reached"),
                       func.max(case((D.outcome == "defer", 1), else_=0)).label("deferred"),
                       func.sum(D.cap_hours).label("hours"))
                .where(in_month(month), D.scope_line.is_not(None), D.outcome != "ignore")
                .group_by(D.scope_line, D.source, D.item_id).subquery())
    p = per_item.c
    stmt = select(p.line, func.count(), func.sum(p.reached), func.sum(p.deferred),
                  func.sum(p.hours)).group_by(p.line)
    return {line: LineCount(line, n, int(reached), int(deferred), float(hours or 0.0))
            for line, n, reached, deferred, hours in conn.execute(stmt)}


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    p90: float
    count: int


def time_to_owner(minutes: dict[str, list[float]]) -> dict[str, Spread]:
    """Return the nearest-rank median and 90th percentile of each source's sorted times
    to owner (`owner_minutes`), and how many there are.

    Ranked here, not by PostgreSQL's percentile_disc: the dashboard needs the values
    themselves for its distribution plot, and SQLite has no percentile (its window
    functions sorted them twice and took three times as long).
    """
    return {source: Spread(round(nearest_rank(found, 50) or 0.0, 1),
                           round(nearest_rank(found, 90) or 0.0, 1), len(found))
            for source, found in minutes.items()}


def owner_minutes(conn: Connection, month: Month) -> dict[str, list[float]]:
    """Return each source's times to owner in the month (minutes, one per owned item),
    sorted ascending, sources in order: the values `time_to_owner` ranks and the
    dashboard's distribution plot draws."""
    where = (in_month(month), D.owner_minutes.is_not(None))
    values: dict[str, list[float]] = {}
    for source, minutes in conn.execute(select(D.source, D.owner_minutes).where(*where)).all():
        values.setdefault(source, []).append(float(minutes))
    return {source: sorted(found) for source, found in sorted(values.items())}


def week_hours(conn: Connection, month: Month) -> dict[date, float]:
    """Sum the CTO hours charged in each week that starts in the month, by the event
    time of the decision that charged them (the charges are what the cap counts)."""
    if not month.weeks:
        return {}
    bucket = case(*((D.event_at < w.ends, literal(w.start.isoformat()))
                    for w in month.weeks), else_=None)
    first, last = month.weeks[0], month.weeks[-1]
    stmt = (select(bucket.label("week"), func.sum(charges.c.hours))
            .select_from(charges.join(decisions, D.id == charges.c.decision_id))
            # charges.week_start comes first in its key: it bounds the scan of charges.
            .where(charges.c.week_start >= first.start - timedelta(days=7),
                   charges.c.week_start <= last.start + timedelta(days=7),
                   D.event_at >= first.begins, D.event_at < last.ends)
            .group_by(bucket))
    hours = {w.start: 0.0 for w in month.weeks}
    for week, total in conn.execute(stmt):
        if week is not None:
            hours[date.fromisoformat(week)] += float(total or 0.0)
    return hours

"""The monthly review's figures, aggregated in the database.

Each function answers one question with one statement over the month's decisions (the
`event_at` index bounds the scan) and returns small results: counts per group,
percentiles picked by window functions, a few rows per escalation. Nothing loads every
decision into Python, so a month of 50,000 decisions reads in milliseconds
(bench/report.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    JSON,
    ColumnElement,
    Connection,
    and_,
    case,
    cast,
    func,
    literal,
    or_,
    select,
    type_coerce,
)

from router.db.tables import charges, decisions, escalation_items, escalations, items
from router.reviews.periods import Month

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
class Sent:
    """Work someone else put on the CTO: a hand-back, or a put-back after one."""

    source: str
    who: str | None  # the assigner (person key or account); None: not known
    handed_back: bool
    count: int


@dataclass(frozen=True, slots=True)
class Tally:
    """Counts over every decision of the month, from one grouped scan."""

    by_outcome: dict[str, int]
    handed_back_by_source: dict[str, int]
    exceptions: int
    sent: list[Sent]


def tally(conn: Connection, month: Month, cto: str) -> Tally:
    """Count decisions by outcome, hand-backs by source and sender, the CTO's own
    exceptions, and put-backs (charged to the cap, assigned to the CTO by someone, not
    CTO-owned), grouping on columns the month index covers."""
    charged, cto_owned = (D.cap_hours > 0).label("charged"), (D.owner == cto).label("cto")
    keys = (D.outcome, D.source, D.handed_back, D.exception, D.assigner, charged, cto_owned)
    stmt = select(*keys, func.count()).where(in_month(month)).group_by(*keys)
    by_outcome: Counter[str] = Counter()
    handed: Counter[str] = Counter()
    exceptions = 0
    sent: Counter[tuple[str, str | None, bool]] = Counter()
    for outcome, source, handed_back, exception, who, paid, own, n in conn.execute(stmt):
        by_outcome[outcome] += n
        exceptions += n if exception else 0
        if handed_back:
            handed[source] += n
            sent[(source, who, True)] += n
        elif paid and who is not None and not exception and not own:
            sent[(source, who, False)] += n
    return Tally(dict(by_outcome), dict(handed), exceptions,
                 [Sent(source, who, back, n) for (source, who, back), n in sent.items()])


def fired(conn: Connection, month: Month) -> Counter[str]:
    """Count, per trigger, the decisions it fired on (escalations carry their list).

    The escalations are found in the month index first, so only their rows are read.
    """
    escalated = select(D.id).where(in_month(month), D.outcome == "escalate")
    stmt = (select(D.triggers, func.count()).where(D.id.in_(escalated))
            .group_by(D.triggers))
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


def time_to_owner(conn: Connection, month: Month) -> dict[str, Spread]:
    """Return the nearest-rank median and 90th percentile of time to owner per source.

    Ranks come from window functions, so only the two chosen rows per source leave the
    database: rank ceil(n/2) and ceil(9n/10), in integer arithmetic.
    """
    ranked = (select(D.source, D.owner_minutes.label("minutes"),
                     func.row_number().over(partition_by=D.source,
                                            order_by=(D.owner_minutes, D.id)).label("rank"),
                     func.count().over(partition_by=D.source).label("n"))
              .where(in_month(month), D.owner_minutes.is_not(None)).subquery())
    r = ranked.c
    stmt = select(r.source, r.minutes, r.rank, r.n).where(
        or_(r.rank == (r.n + 1) // 2, r.rank == (9 * r.n + 9) // 10))
    picked: dict[str, dict[str, Any]] = {}
    for source, minutes, rank, n in conn.execute(stmt):
        entry = picked.setdefault(source, {"count": int(n)})
        if rank == (n + 1) // 2:
            entry["median"] = float(minutes)
        if rank == (9 * n + 9) // 10:
            entry["p90"] = float(minutes)
    return {s: Spread(round(v["median"], 1), round(v["p90"], 1), v["count"])
            for s, v in sorted(picked.items())}


def week_hours(conn: Connection, month: Month) -> dict[date, float]:
    """Sum the CTO hours charged in each week that starts in the month, by the event
    time of the decision that charged them."""
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


@dataclass(frozen=True, slots=True)
class EscalationRow:
    id: int
    trigger: str
    status: str
    paged_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    event_at: datetime
    decision_id: int
    source: str
    item_key: str | None
    owner: str | None
    hours: float  # charged to the cap: acknowledged->resolved, 1h until known
    items: tuple[str, ...]


def escalation_rows(conn: Connection, month: Month) -> list[EscalationRow]:
    """Return the month's escalations (by the event time of the decision that paged),
    with their items and the hours charged for them, oldest first."""
    e = escalations.c
    # paged_at is when the page was decided, at or after its event: it bounds the scan
    # by its index; the event time then decides the month.
    paged = escalations.join(decisions, D.id == e.decision_id)
    month_s = (e.paged_at >= month.begins - LATE, e.paged_at < month.ends + LATE, in_month(month))
    found = conn.execute(
        select(e.id, e.trigger_id, e.status, e.paged_at, e.acknowledged_at, e.resolved_at,
               D.event_at, D.id.label("decision_id"), D.source, D.item_key, D.owner)
        .select_from(paged).where(*month_s).order_by(D.event_at, e.id)).all()
    if not found:
        return []
    hours = _page_hours(conn, month)
    members: dict[int, list[str]] = {}
    m = escalation_items.c
    for esc_id, key in conn.execute(
            select(m.escalation_id, m.item_key)
            .select_from(escalation_items.join(paged, e.id == m.escalation_id))
            .where(*month_s).order_by(m.escalation_id, m.joined_at, m.item_key)):
        members.setdefault(esc_id, []).append(key)
    return [EscalationRow(r.id, r.trigger_id, r.status, r.paged_at, r.acknowledged_at,
                          r.resolved_at, r.event_at, r.decision_id, r.source, r.item_key,
                          r.owner, hours.get(str(r.id), 0.0), tuple(members.get(r.id, ())))
            for r in found]


def _page_hours(conn: Connection, month: Month) -> dict[str, float]:
    """Return the hours each page charged, by escalation id (as text), for the weeks
    around the month (charges.week_start leads their key)."""
    c = charges.c
    stmt = select(c.item_id, c.hours).where(
        c.week_start >= month.first - timedelta(days=7),
        c.week_start <= month.last_day + timedelta(days=7), c.source == "page")
    return {item_id: float(h) for item_id, h in conn.execute(stmt)}


def unknown_assigner_reporters(conn: Connection, month: Month) -> list[tuple[str, str | None]]:
    """Return (source, reporter account) of hand-backs whose assigner is not known."""
    stmt = (select(D.source, items.c.state)
            .select_from(decisions.join(items, and_(items.c.source == D.source,
                                                    items.c.item_id == D.item_id)))
            .where(in_month(month), D.handed_back.is_(True), D.assigner.is_(None)))
    return [(source, orjson.loads(state).get("reporter")) for source, state in conn.execute(stmt)]


def charged_rows(conn: Connection, month: Month) -> list[Any]:
    """Return the month's decisions that spent the CTO's time outside a page: the CTO's
    own exceptions and work charged to the cap, oldest first.

    Every column is in the month index; sorting the few rows here keeps the query on it
    (ORDER BY event_at, id would pick the narrow event_at index and read every row).
    """
    stmt = (select(D.id, D.event_at, D.source, D.item_key, D.owner, D.scope_line,
                   D.exception, D.assigner, D.cap_hours, D.outcome)
            .where(in_month(month), or_(D.exception.is_(True), D.cap_hours > 0)))
    return sorted(conn.execute(stmt).all(), key=lambda r: (r.event_at, r.id))


def catch_all(conn: Connection, month: Month, line: str) -> tuple[Counter[str], Counter[str]]:
    """Count the items only the catch-all `line` took, by project and by label."""
    taken = (select(D.source, D.item_id).where(in_month(month), D.scope_line == line,
                                              D.outcome != "ignore")
             .distinct().subquery())
    joined = taken.join(items, and_(items.c.source == taken.c.source,
                                    items.c.item_id == taken.c.item_id))
    # PostgreSQL parses the text as JSON; SQLite's JSON functions read it as it is.
    pg = conn.dialect.name == "postgresql"
    state = cast(items.c.state, JSON) if pg else type_coerce(items.c.state, JSON)
    project = state["project"].as_string()
    by_project = Counter({p or "(none)": n for p, n in conn.execute(
        select(project, func.count()).select_from(joined).group_by(project))})
    if pg:
        labels = func.json_array_elements_text(state["labels"]).table_valued("value")
    else:
        labels = func.json_each(items.c.state, "$.labels").table_valued("value")
    by_label = Counter({label: n for label, n in conn.execute(
        select(labels.c.value, func.count()).select_from(joined).join(labels, literal(True))
        .group_by(labels.c.value))})
    return by_project, by_label


def skipped_as_expired(conn: Connection, month: Month, since: datetime) \
        -> dict[str, set[str]]:
    """Return, per time-boxed line, the items that matched it after its last day (none
    can before `since`, the earliest stop)."""
    stmt = (select(D.source, D.item_id, D.evidence)
            .where(in_month(month), D.event_at >= since, D.outcome != "ignore",
                   D.evidence.contains('"skipped":[', autoescape=True)))
    out: dict[str, set[str]] = {}
    for source, item_id, evidence in conn.execute(stmt):
        for entry in orjson.loads(evidence).get("owner", {}).get("skipped", []):
            out.setdefault(entry["line"], set()).add(f"{source}:{item_id}")
    return out


def hours_after(conn: Connection, month: Month, line: str, after: datetime) -> float:
    """Return the CTO hours charged under `line` in the month at or after `after`."""
    stmt = select(func.coalesce(func.sum(D.cap_hours), 0.0)).where(
        in_month(month), D.scope_line == line, D.event_at >= after)
    return float(conn.execute(stmt).scalar_one())

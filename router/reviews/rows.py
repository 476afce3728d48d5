"""The rows behind the monthly review and the exception log: escalations with their
items and hours, the decisions that charged the CTO's time, the catch-all line's items,
the items that matched a time-boxed line after its stop. Few per month, each fetched
with one statement bounded by the month index.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, func, or_, select

from router.db.tables import charges, decisions, escalation_items, escalations
from router.reviews.figures import LATE, in_month
from router.reviews.periods import Month

D = decisions.c


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
    # Columns in EscalationRow's order, unpacked by position: a busy month has thousands
    # of escalations, and reading each column by name cost as much as the query.
    found = conn.execute(
        select(e.id, e.trigger_id, e.status, e.paged_at, e.acknowledged_at, e.resolved_at,
               D.event_at, D.id, D.source, D.item_key, D.owner)
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
    return [EscalationRow(*row, hours.get(row[0], 0.0), tuple(members.get(row[0], ())))
            for row in found]


def _page_hours(conn: Connection, month: Month) -> dict[int, float]:
    """Return the hours each page charged, by escalation id, for the weeks around the
    month (charges.week_start leads their key; a page's charge is keyed by its
    escalation's id as text)."""
    c = charges.c
    stmt = select(c.item_id, c.hours).where(
        c.week_start >= month.first - timedelta(days=7),
        c.week_start <= month.last_day + timedelta(days=7), c.source == "page")
    return {int(item_id): float(h) for item_id, h in conn.execute(stmt)}


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


def exception_items(conn: Connection, month: Month) -> list[str]:
    """Return the keys of the items the CTO assigned to themself, by when each was first
    (one row per item from the month index; no times to convert)."""
    stmt = (select(D.item_key).where(in_month(month), D.exception.is_(True),
                                     D.item_key.is_not(None))
            .group_by(D.item_key).order_by(func.min(D.event_at), D.item_key))
    return list(conn.execute(stmt).scalars())


def catch_all(conn: Connection, month: Month, line: str) -> tuple[Counter[str], Counter[str]]:
    """Count the items only the catch-all `line` took, by project and by label, as the
    note saw each item the last time the line took it in the month.

    The decision's own copy, not the item's newest state: a label added in December
    neither moves November's work nor changes November's review (router.reviews.kept).
    The database picks each item's last decision and counts the items per project and
    set of labels, so a few rows come back, not one per item (bench/report.py's month:
    57 ms against 64 ms on SQLite, 78 against 101 on PostgreSQL).
    """
    last = func.row_number().over(partition_by=(D.source, D.item_id),
                                  order_by=(D.event_at.desc(), D.project, D.labels))
    taken = (select(D.project, D.labels, last.label("n"))
             .where(in_month(month), D.scope_line == line, D.outcome != "ignore").subquery())
    stmt = (select(taken.c.project, taken.c.labels, func.count())
            .where(taken.c.n == 1).group_by(taken.c.project, taken.c.labels))
    by_project: Counter[str] = Counter()
    by_label: Counter[str] = Counter()
    for project, labels, items in conn.execute(stmt):
        by_project[project or "(none)"] += items
        for label in orjson.loads(labels) if labels else ():
            by_label[label] += items
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

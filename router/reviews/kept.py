"""Monthly reviews kept in memory while the records they were computed from stay as they were.

Computing a month's review takes eight grouped passes over its decisions
(router.reviews.figures): about 300 ms for a month of 50,000 decisions, over 100 times a
count of them (bench/report.py). Once the month is over its records rarely change, and
the dashboard, the read API and the CLI ask for the same month again and again. Each
process therefore keeps the reviews it computed, each with a fingerprint of the records
it read, and answers from a kept one while a fresh fingerprint still matches:

- the month's decisions, counted: they are only ever inserted (the ledger never updates
  one, and pruning keeps them), and each carries what else the review needs of its item,
  the project, labels and reporter as decided (migration 0013);
- the escalations paged from two days before the month to two days after it (the
  review's own window): how many, and the sum of their `revision`s, which every UPDATE
  of an escalation raises by one (router.db.tables); and the items of the escalations in
  that range of ids, counted (an item joins a page after it opened);
- the charges of the weeks around the month: how many, and their hours;
- the scope note, by its hash, in the key.

The fingerprint is read before the figures: a change committed while a review is
computed leaves that review with the older fingerprint, so the next request computes it
again. A kept review is never staler than the records.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, func, select

from router.db.tables import charges, decisions, escalation_items, escalations
from router.reviews.figures import LATE, in_month, owner_minutes
from router.reviews.monthly import MonthlyReport, monthly_report
from router.reviews.periods import Month
from router.scope.load import Scope

KEEP = 6  # reviews kept per database: this month, last month and a few the dashboard visited

Fingerprint = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class MonthReview:
    """A month's review and the values of its time-to-owner distribution (each source's
    times to owner, sorted: the dashboard plots them). Shared: do not change either."""

    report: MonthlyReport
    owner_minutes: dict[str, list[float]]


_lock = threading.Lock()
_kept: WeakKeyDictionary[Engine, OrderedDict[tuple[str, str], tuple[Fingerprint, MonthReview]]]
_kept = WeakKeyDictionary()


def month_review(conn: Connection, scope: Scope, month: Month) -> MonthReview:
    """Return the month's review under the note in force: the kept one if nothing it was
    computed from has changed since, else a new one (then kept)."""
    key = (scope.hash, month.label)
    now = fingerprint(conn, month)
    with _lock:
        kept = _kept.setdefault(conn.engine, OrderedDict())
        found = kept.get(key)
        if found is not None and found[0] == now:
            kept.move_to_end(key)
            return found[1]
    minutes = owner_minutes(conn, month)
    review = MonthReview(monthly_report(conn, scope, month, minutes), minutes)
    with _lock:
        kept[key] = (now, review)
        kept.move_to_end(key)
        while len(kept) > KEEP:
            kept.popitem(last=False)
    return review


def fingerprint(conn: Connection, month: Month) -> Fingerprint:
    """Return what, if it is unchanged, leaves the month's review as it was (see the
    module docstring)."""
    e = escalations.c
    made = conn.execute(select(func.count()).select_from(decisions)
                        .where(in_month(month))).scalar_one()
    paged = conn.execute(select(func.count(), func.coalesce(func.sum(e.revision), 0),
                                func.min(e.id), func.max(e.id))
                         .where(e.paged_at >= month.begins - LATE,
                                e.paged_at < month.ends + LATE)).one()
    members = 0
    if paged[0]:
        m = escalation_items.c
        members = conn.execute(select(func.count()).where(
            m.escalation_id >= paged[2], m.escalation_id <= paged[3])).scalar_one()
    first = min([month.first, *(w.start for w in month.weeks[:1])]) - timedelta(days=7)
    last = max([month.last_day, *(w.start for w in month.weeks[-1:])]) + timedelta(days=7)
    c = charges.c
    charged = conn.execute(select(func.count(), func.coalesce(func.sum(c.hours), 0.0))
                           .where(c.week_start >= first, c.week_start <= last)).one()
    return (made, *paged, members, *charged)

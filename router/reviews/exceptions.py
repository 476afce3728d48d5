"""The exception log: every time the CTO's time was spent, why, hours, follow-up owner.

One entry per escalation (a page: its trigger, the hours charged for it), per time the
CTO assigned work to themself ("CTO took it"), per time someone put work back on the
CTO after firstline handed it on, and per CTO-owned item charged to the weekly cap (its
scope line). Entries belong to the month of the event that was decided on, in the scope
note's timezone, and are listed oldest first. `exception_log()` returns the data;
`router.reviews.render` writes it as Markdown, JSON or CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection

from router.reviews import rows
from router.reviews.periods import Month
from router.reviews.rows import EscalationRow
from router.scope.load import Scope

Kind = Literal["escalation", "self-assigned", "put back", "cto-owned"]


@dataclass(frozen=True, slots=True)
class ExceptionEntry:
    at: datetime  # the event time of the decision, in the note's timezone
    kind: Kind
    items: tuple[str, ...]
    what: str
    why: str
    hours: float  # charged to the CTO's weekly cap
    follow_up_owner: str | None
    decision_id: int
    escalation_id: int | None = None


@dataclass(frozen=True, slots=True)
class ExceptionLog:
    month: str
    timezone: str
    entries: list[ExceptionEntry]

    @property
    def hours(self) -> float:
        return round(sum(e.hours for e in self.entries), 2)


def exception_log(conn: Connection, scope: Scope, month: Month) -> ExceptionLog:
    """Return every spend of the CTO's time in `month`, oldest first."""
    entries = [_paged(e, scope) for e in rows.escalation_rows(conn, month)]
    entries += [_charged(row, scope) for row in rows.charged_rows(conn, month)]
    entries.sort(key=lambda e: (e.at, e.decision_id, e.escalation_id or 0))
    return ExceptionLog(month.label, scope.note.timezone, entries)


def _paged(e: EscalationRow, scope: Scope) -> ExceptionEntry:
    names = {t.id: t.name for t in scope.triggers}
    keys = e.items or ((e.item_key,) if e.item_key else ())
    timing = []
    if e.acknowledged_at is not None:
        timing.append(f"acknowledged after {_minutes(e.paged_at, e.acknowledged_at)}")
    if e.acknowledged_at is not None and e.resolved_at is not None:
        timing.append(f"CTO time {_minutes(e.acknowledged_at, e.resolved_at)}")
    elif e.status == "open":
        timing.append("still open")
    detail = f" ({', '.join(timing)})" if timing else ""
    return ExceptionEntry(
        at=e.event_at.astimezone(scope.tz), kind="escalation", items=keys,
        what=f"Paged the CTO about {', '.join(keys)}{detail}",
        why=f"trigger {e.trigger}: {names.get(e.trigger, '(no longer in the scope note)')}",
        hours=round(e.hours, 2), follow_up_owner=e.owner, decision_id=e.decision_id,
        escalation_id=e.id)


def _charged(row: Any, scope: Scope) -> ExceptionEntry:
    key = row.item_key or "?"
    line = f"scope line {row.scope_line!r}" if row.scope_line else "no scope line"
    kind: Kind
    if row.exception:
        kind, what, why = "self-assigned", f"The CTO assigned {key} to themself", \
            "CTO took it"
    elif row.assigner is not None and row.owner != scope.cto:
        kind, what = "put back", f"{row.assigner} put {key} back on the CTO after firstline " \
            "handed it on"
        why = f"{line}; not overruled twice"
    else:
        kind, what, why = "cto-owned", f"{key} kept for the CTO's scheduled block", line
    return ExceptionEntry(at=row.event_at.astimezone(scope.tz), kind=kind, items=(key,),
                          what=what, why=why, hours=round(float(row.cap_hours), 2),
                          follow_up_owner=row.owner, decision_id=row.id)


def _minutes(start: datetime, end: datetime) -> str:
    return f"{max(0.0, (end - start).total_seconds() / 60.0):.0f} min"

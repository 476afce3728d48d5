"""The monthly review (SPEC §9): how much unplanned work still reached the CTO, and why.

`monthly_report()` returns the review as data (`MonthlyReport`); `router.reviews.render`
turns it into Markdown, JSON or CSV, and the dashboard renders the same data. The
figures come from `router.reviews.figures`, aggregated in the database.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from sqlalchemy import Connection

from router.reviews import figures, rows
from router.reviews.figures import Spread
from router.reviews.periods import Month, local_midnight
from router.reviews.rows import EscalationRow
from router.reviews.suggestions import suggest
from router.scope.load import Scope
from router.scope.schema import MatchSpec

TOP_SENDERS = 3


@dataclass(frozen=True, slots=True)
class WeekFigure:
    start: date
    cto_hours: float
    over_cap: bool


@dataclass(frozen=True, slots=True)
class EscalationFigure:
    id: int
    trigger: str
    items: tuple[str, ...]
    paged_at: datetime
    minutes_to_acknowledge: float | None
    cto_minutes: float | None  # acknowledged -> resolved; None until both are known
    hours: float  # charged to the weekly cap
    status: str
    follow_up_owner: str | None


@dataclass(frozen=True, slots=True)
class LineFigure:
    line: str
    owner: str | None  # None: the line is no longer in the scope note
    items: int
    reached_cto: int


@dataclass(frozen=True, slots=True)
class StintFigure:
    """A time-boxed owner line: its stint, its hours this month, whether it ran over."""

    line: str
    owner: str
    mode: str | None
    until: date
    note: str | None
    hours: float
    items: int
    ended: bool  # its last day is before the month's end
    items_after_stop: int  # items that matched it after its last day (skipped)
    hours_after_stop: float  # CTO hours charged under it after its last day
    ran_past_stop: bool


@dataclass(frozen=True, slots=True)
class CatchAll:
    line: str
    items: int
    by_project: dict[str, int]
    by_label: dict[str, int]


@dataclass(frozen=True, slots=True)
class MonthlyReport:
    month: str
    timezone: str
    cap_hours_per_week: float
    week_starts: str  # mon ... sun
    mode: str  # the note's mode: in shadow mode pages are the ones it would have sent
    weeks: list[WeekFigure]
    escalations: list[EscalationFigure]
    escalations_by_trigger: dict[str, int]
    handed_back_by_source: dict[str, int]
    handed_back_by_assigner: dict[str, int]
    top_senders: list[tuple[str, int]]  # who put work on the CTO at least twice
    exceptions: int  # decisions on items the CTO assigned to themself
    exception_items: list[str]
    deferred: int
    time_to_owner: dict[str, Spread]
    scope_lines: list[LineFigure]
    time_boxed: list[StintFigure]
    catch_all: CatchAll | None
    triggers_fired: dict[str, int]  # every trigger of the note, 0 if it never fired
    away_without_backup: dict[str, int]  # person -> days away in the month
    decisions: dict[str, int]  # by outcome
    suggestions: tuple[str, ...] = ()

    @property
    def cto_hours(self) -> float:
        return round(sum(w.cto_hours for w in self.weeks), 2)

    @property
    def handed_back(self) -> int:
        return sum(self.handed_back_by_source.values())


def monthly_report(conn: Connection, scope: Scope, month: Month,
                   owner_minutes: dict[str, list[float]] | None = None) -> MonthlyReport:
    """Compute the review of `month` from the stored records, under the note in force;
    `owner_minutes` (`figures.owner_minutes` of the month) are read here unless the
    caller read them already."""
    tally = figures.tally(conn, month)
    fired = figures.fired(conn, month)
    lines = figures.lines(conn, month)
    escalations = rows.escalation_rows(conn, month)
    by_trigger = Counter(e.trigger for e in escalations)
    by_assigner, top = _senders(scope, figures.senders(conn, month, scope.cto))
    hours = figures.week_hours(conn, month)
    report = MonthlyReport(
        month=month.label, timezone=scope.note.timezone, cap_hours_per_week=scope.cap_hours,
        week_starts=scope.note.cap.week_starts, mode=scope.mode,
        weeks=[WeekFigure(w, round(h, 2), h > scope.cap_hours) for w, h in hours.items()],
        escalations=[_escalation(e, scope) for e in escalations],
        escalations_by_trigger=dict(sorted(by_trigger.items())),
        handed_back_by_source=dict(sorted(tally.handed_back_by_source.items())),
        handed_back_by_assigner=by_assigner, top_senders=top, exceptions=tally.exceptions,
        exception_items=rows.exception_items(conn, month) if tally.exceptions else [],
        deferred=sum(c.deferred for c in lines.values()),
        time_to_owner=figures.time_to_owner(
            figures.owner_minutes(conn, month) if owner_minutes is None else owner_minutes),
        scope_lines=_lines(scope, lines), time_boxed=_stints(conn, scope, month, lines),
        catch_all=_catch_all(conn, scope, month, lines),
        triggers_fired={t.id: fired.get(t.id, 0) for t in scope.triggers},
        away_without_backup=_away_without_backup(scope, month),
        decisions=dict(sorted(tally.by_outcome.items())))
    return replace(report, suggestions=tuple(suggest(report)))


def _escalation(e: EscalationRow, scope: Scope) -> EscalationFigure:
    def minutes(start: datetime | None, end: datetime | None) -> float | None:
        if start is None or end is None:
            return None
        return round(max(0.0, (end - start).total_seconds() / 60.0), 1)

    return EscalationFigure(e.id, e.trigger, e.items or ((e.item_key,) if e.item_key else ()),
                            e.paged_at.astimezone(scope.tz),
                            minutes(e.paged_at, e.acknowledged_at),
                            minutes(e.acknowledged_at, e.resolved_at), round(e.hours, 2),
                            e.status, e.owner)


def _senders(scope: Scope, sent: list[figures.Sent]) \
        -> tuple[dict[str, int], list[tuple[str, int]]]:
    """Return hand-backs by who put the work on the CTO (the assigner, else the
    reporter), and the people who put work on the CTO at least twice."""
    handed: Counter[str] = Counter()
    everyone: Counter[str] = Counter()
    for s in sent:
        who = s.who
        if s.reporter and who is not None:
            who = scope.person_for(s.source, who) or who  # type: ignore[arg-type]
        who = who or "unknown"
        everyone[who] += s.count
        if s.handed_back:
            handed[who] += s.count
    top = [(who, n) for who, n in sorted(everyone.items(), key=lambda p: (-p[1], p[0]))
           if n >= 2 and who != "unknown"][:TOP_SENDERS]
    return dict(sorted(handed.items(), key=lambda p: (-p[1], p[0]))), top


def _lines(scope: Scope, counted: dict[str, figures.LineCount]) -> list[LineFigure]:
    """Every owner line of the note in order (zeros included), then lines the month's
    decisions name that the note no longer has."""
    out = [LineFigure(o.name, o.owner, counted[o.name].items if o.name in counted else 0,
                      counted[o.name].reached_cto if o.name in counted else 0)
           for o in scope.owners]
    known = {o.name for o in scope.owners}
    out += [LineFigure(c.line, None, c.items, c.reached_cto)
            for c in sorted(counted.values(), key=lambda c: c.line) if c.line not in known]
    return out


def _stints(conn: Connection, scope: Scope, month: Month,
            counted: dict[str, figures.LineCount]) -> list[StintFigure]:
    """Return each time-boxed line with its hours and items this month, and whether work
    still reached it after its stop (local midnight after its `until`)."""
    stops = {o.name: local_midnight(o.until + timedelta(days=1), scope.tz)
             for o in scope.owners if o.until is not None}
    if not stops:
        return []
    first = min(stops.values())
    after = rows.skipped_as_expired(conn, month, first) if first < month.ends else {}
    out = []
    for line in scope.owners:
        if line.until is None:
            continue
        stop = stops[line.name]
        late = rows.hours_after(conn, month, line.name, stop) if stop < month.ends else 0.0
        taken = counted.get(line.name)
        skipped = len(after.get(line.name, ()))
        out.append(StintFigure(line.name, line.owner, line.mode, line.until, line.note,
                               round(taken.hours, 2) if taken else 0.0,
                               taken.items if taken else 0, line.until < month.last_day,
                               skipped, round(late, 2), bool(skipped or late)))
    return out


def _catch_all(conn: Connection, scope: Scope, month: Month,
               counted: dict[str, figures.LineCount]) -> CatchAll | None:
    """Return the items only the last line took, if it matches everything."""
    last = scope.note.owners[-1]
    if last.match not in (None, MatchSpec()) or last.name not in counted:
        return None
    by_project, by_label = rows.catch_all(conn, month, last.name)
    return CatchAll(last.name, counted[last.name].items, _biggest_first(by_project),
                    _biggest_first(by_label))


def _biggest_first(counts: Counter[str]) -> dict[str, int]:
    return dict(sorted(counts.items(), key=lambda p: (-p[1], p[0])))


def _away_without_backup(scope: Scope, month: Month) -> dict[str, int]:
    """Return the people with no backup who were away in the month, and for how many days."""
    out = {}
    for key, person in scope.people.items():
        if person.backup is not None or not person.away:
            continue
        days = sum(max(0, (min(end, month.last_day) - max(start, month.first)).days + 1)
                   for start, end in person.away)
        if days:
            out[key] = days
    return out

"""The monthly review page: the report `firstline report` prints, with plots, a month
picker and every table as CSV.

The figures are `router.reviews.kept.month_review()`'s, the same object the CLI and the
read API render; the page only arranges them. With the report come the times to owner
of each owned item, which the distribution plot draws (the report keeps only their
median, 90th percentile and count).
"""

from collections import Counter
from dataclasses import dataclass, replace
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from router.core.durations import week_start
from router.http.pages.auth import Viewer
from router.http.pages.openapi import SESSION, answers
from router.http.pages.plots import DAYS, Plot, bars, distribution, weekly_hours
from router.http.pages.render import HEADERS, Pages
from router.reviews.definitions import monthly_definitions
from router.reviews.kept import month_review
from router.reviews.monthly import MonthlyReport
from router.reviews.periods import BadMonth, Month, month_of, parse_month
from router.reviews.render import csv_text, monthly_csv

CSV = "text/csv; charset=utf-8"
COUNT = "Items (count)"
# Rows a table shows on the page; its CSV has them all. A month with thousands of
# escalations read as a table nobody scrolls, and escaping it was most of the page's time.
SHOWN = 100
LISTED = 10  # the CTO's own exceptions named in the summary; the exception log has them all


@dataclass(frozen=True, slots=True)
class Table:
    """A table of the page, as shown (with its figure's definition) and as its CSV
    download (`name`.csv); `plot` draws it, if any."""

    name: str
    title: str
    definition: str
    headers: list[str]
    rows: list[list[str]]
    plot: Plot | None = None


@dataclass(frozen=True, slots=True)
class Review:
    """A month's report and its tables, in the page's order."""

    month: Month
    report: MonthlyReport
    tables: dict[str, Table]


# The page's tables in order, each with the definition (router.reviews.definitions) it shows.
DEFINED = {"cto-hours": "weeks", "escalations-by-week": "escalations",
           "escalations": "escalation_times", "hand-backs": "handed_back",
           "senders": "top_senders", "time-to-owner": "time_to_owner_minutes",
           "scope-lines": "scope_lines", "time-boxed": "time_boxed", "catch-all": "catch_all",
           "triggers": "triggers_fired", "away": "away_without_backup",
           "decisions": "decisions"}


MONTH = {"parameters": [{
    "name": "month", "in": "query", "required": False,
    "description": "YYYY-MM in the scope note's timezone (default: the last complete month)",
    "schema": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"}}]}


def routes(router: APIRouter, pages: Pages, viewer: Any) -> None:
    """Add `/month` and `/month/{table}.csv`."""

    # `month` is read from the query string, so the schema can say its form (FastAPI's own
    # check would answer a month like 2026-13 without saying what to send).
    @router.get("/month", response_class=HTMLResponse, responses=answers(*SESSION, 422),
                openapi_extra=MONTH)
    def month_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
        review = read_review(pages, request.query_params.get("month"))
        return pages.render(request, "month.html", who, {
            "r": review.report, "tables": review.tables, "shown": SHOWN, "listed": LISTED,
            "before": _shift(review.month, -1), "after": _shift(review.month, 1)})

    @router.get("/month/{table}.csv", responses=answers(*SESSION, 404, 422),
                openapi_extra=MONTH)
    def table_csv(request: Request, table: str,
                  who: Annotated[Viewer, Depends(viewer)]) -> Response:
        review = read_review(pages, request.query_params.get("month"))
        if table == "report":
            body = monthly_csv(review.report)
        elif table in review.tables:
            found = review.tables[table]
            body = csv_text([found.headers, *found.rows])
        else:
            raise HTTPException(404, f"no table {table!r} on the monthly review")
        name = f"firstline-{review.month.label}-{table}.csv"
        return Response(body, media_type=CSV, headers={
            **HEADERS, "Content-Disposition": f'attachment; filename="{name}"'})


def read_review(pages: Pages, text: str | None) -> Review:
    """Read the month's review (default: the last complete month) and lay it out; 422
    for a month that is not YYYY-MM."""
    scope = pages.scope()
    try:
        month = month_of(text or None, scope.tz, scope.week_starts, pages.clock())
    except BadMonth as exc:
        raise HTTPException(422, str(exc)) from exc
    with pages.engine.connect() as conn:
        reviewed = month_review(conn, scope, month)
    report, minutes = reviewed.report, reviewed.owner_minutes
    plots = _plots(report, minutes, scope.tz, scope.week_starts)
    tables = [Table(name, p.title, "", p.headers, p.rows, p) for name, p in plots.items()]
    by_name = {t.name: t for t in [*tables, *_tables(report)]}
    defined = monthly_definitions(report)
    return Review(month, report, {name: replace(by_name[name], definition=defined[key])
                                  for name, key in DEFINED.items()})


def _plots(r: MonthlyReport, minutes: dict[str, list[float]], tz: ZoneInfo,
           week_starts: int) -> dict[str, Plot]:
    return {
        "cto-hours": weekly_hours([(w.start, w.cto_hours) for w in r.weeks],
                                  r.cap_hours_per_week, r.week_starts,
                                  "CTO unplanned hours per week against the cap"),
        "escalations-by-week": _escalations_by_week(r, tz, week_starts),
        "time-to-owner": distribution(
            "Time to owner per source", "Source", "Minutes from creation to owner (min)",
            minutes, unit="min"),
        "hand-backs": bars(
            "Hand-backs by who put the work on the CTO", "Who put it on the CTO", COUNT,
            list(r.handed_back_by_assigner),
            {"Items handed back": list(r.handed_back_by_assigner.values())}, counts=True),
        "scope-lines": bars(
            "Items per scope line", "Owner line", COUNT, [c.line for c in r.scope_lines],
            {"Items the line took": [c.items for c in r.scope_lines],
             "Of those, reached the CTO first": [c.reached_cto for c in r.scope_lines]},
            counts=True, horizontal=True),
    }


def _escalations_by_week(r: MonthlyReport, tz: ZoneInfo, week_starts: int) -> Plot:
    """Stack each week's escalations by trigger, in the week of their page; a page in
    the month's first days belongs to the week that started the month before."""
    counted = Counter((week_start(e.paged_at, tz, week_starts), e.trigger)
                      for e in r.escalations)
    weeks = sorted({w.start for w in r.weeks} | {w for w, _ in counted})
    day = DAYS.get(r.week_starts, r.week_starts)
    return bars("Escalations by trigger per week", f"Week starting {day}",
                "Escalations (count)", [w.isoformat() for w in weeks],
                {t: [counted[(w, t)] for w in weeks] for t in r.escalations_by_trigger},
                stacked=True, counts=True)


def _tables(r: MonthlyReport) -> list[Table]:
    """The tables that are not a plot's figures."""
    return [
        Table("escalations", "Escalations", "", ["id", "trigger", "items", "paged",
                                             "to acknowledge (min)", "CTO time (min)",
                                             "hours", "status", "follow-up owner"],
              [[str(e.id), e.trigger, ", ".join(e.items), e.paged_at.isoformat(),
                _text(e.minutes_to_acknowledge), _text(e.cto_minutes), f"{e.hours:g}",
                e.status, e.follow_up_owner or ""] for e in r.escalations]),
        Table("senders", "Who put work on the CTO at least twice", "",
              ["who", "items put on the CTO"], [[w, str(n)] for w, n in r.top_senders]),
        Table("time-boxed", "Time-boxed lines", "",
              ["line", "owner", "mode", "until", "hours", "items", "ended",
               "items after stop", "hours after stop", "ran past its stop"],
              [[s.line, s.owner, s.mode or "", s.until.isoformat(), f"{s.hours:g}",
                str(s.items), _yes(s.ended), str(s.items_after_stop),
                f"{s.hours_after_stop:g}", _yes(s.ran_past_stop)] for s in r.time_boxed]),
        Table("catch-all", "Only the catch-all line took", "", ["group", "items"],
              [] if r.catch_all is None else
              [[f"project {k}", str(n)] for k, n in r.catch_all.by_project.items()]
              + [[f"label {k}", str(n)] for k, n in r.catch_all.by_label.items()]),
        Table("triggers", "Triggers", "", ["trigger", "fired on (decisions)"],
              [[t, str(n)] for t, n in r.triggers_fired.items()]),
        Table("away", "Away with no backup", "", ["person", "days away"],
              [[p, str(n)] for p, n in r.away_without_backup.items()]),
        Table("decisions", "Decisions by outcome", "", ["outcome", "decisions"],
              [[o, str(n)] for o, n in r.decisions.items()]),
    ]


def _shift(month: Month, by: int) -> str:
    """Name the month `by` months after `month` (before, if negative)."""
    year, number = parse_month(month.label)
    index = year * 12 + number - 1 + by
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


def _text(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"

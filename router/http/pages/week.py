"""This week: the CTO's hours against the cap, what is open, what came back, and health."""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from router.core.durations import week_start
from router.db.outbox import RetryRefused, retry_action
from router.db.reads import escalations as escalation_reads
from router.db.reads import health, week
from router.http.pages.auth import (
    Viewer,
    read_form,
    require_csrf,
    require_operator,
    text_field,
)
from router.http.pages.openapi import CSRF, SESSION, answers, form
from router.http.pages.plots import weekly_hours
from router.http.pages.render import Pages
from router.http.params import RecordId
from router.scope.load import Scope, local_day

WEEKS_SHOWN = 4  # this week and the three before it
SILENT_AFTER = timedelta(days=1)  # a source with no delivery for this long is flagged
NEARING_DAYS = 7  # a time-boxed line this close to its stop date is listed
LISTED = 20  # open escalations and dead actions listed (the oldest); the rest are counted
LISTED_WEEK = 50  # hand-backs and deferrals listed (the newest); the rest are counted


@dataclass(frozen=True, slots=True)
class TimeBox:
    """An owner line that stops applying after `until` (an acting CTO's stint)."""

    name: str
    owner: str
    mode: str | None
    until: date
    days_left: int


def time_boxes(scope: Scope, today: date) -> list[TimeBox]:
    """Return the owner lines with an `until:` that is past or within NEARING_DAYS."""
    out = []
    for line in scope.note.owners:
        if line.until is None:
            continue
        left = (line.until - today).days
        if left <= NEARING_DAYS:
            out.append(TimeBox(line.name, line.owner, line.mode, line.until, left))
    return out


def routes(router: APIRouter, pages: Pages, viewer: Any) -> None:
    """Add `/` (this week) and the retry button's route."""

    @router.get("/", response_class=HTMLResponse, responses=answers(*SESSION))
    def this_week(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
        return pages.render(request, "week.html", who, week_context(pages))

    @router.post("/actions/{action_id}/retry", response_class=HTMLResponse,
                 responses=answers(*SESSION, 403, 409, 411, 413), openapi_extra=form(CSRF))
    async def retry(request: Request, action_id: RecordId,
                    who: Annotated[Viewer, Depends(viewer)]) -> Response:
        require_csrf(who, text_field(await read_form(request), "csrf"))
        require_operator(who)

        def put_back() -> None:
            with pages.engine.begin() as conn:
                retry_action(conn, action_id, pages.clock())

        try:
            await run_in_threadpool(put_back)  # a write may wait for SQLite's lock
        except RetryRefused as exc:
            raise HTTPException(409, str(exc)) from exc
        if "hx-request" in request.headers:
            return pages.render(request, "_retried.html", who, {"action_id": action_id})
        return RedirectResponse("/#health", status_code=303)


def week_context(pages: Pages) -> dict[str, Any]:
    """Read everything the week page shows, in one connection."""
    scope, now = pages.scope(), pages.clock()
    this_week = week_start(now, scope.tz, scope.week_starts)
    first = this_week - timedelta(weeks=WEEKS_SHOWN - 1)
    start = datetime.combine(this_week, time(), scope.tz)
    end = datetime.combine(this_week + timedelta(days=7), time(), scope.tz)
    with pages.engine.connect() as conn:
        charged = week.hours_by_week(conn, first, this_week)
        open_count, opened = escalation_reads.open_escalations(conn, LISTED)
        members = escalation_reads.members(conn, [e.id for e in opened])
        back_count, back = week.handed_back(conn, start, end, LISTED_WEEK)
        deferred_count, deferred = week.deferred(conn, start, end, LISTED_WEEK)
        backlog = health.backlog(conn)
        dead_count, dead = health.count_dead(conn), health.dead_actions(conn, LISTED)
        last = health.last_deliveries(conn)
    weeks = [(first + timedelta(weeks=i), charged.get(first + timedelta(weeks=i), 0.0))
             for i in range(WEEKS_SHOWN)]
    used = charged.get(this_week, 0.0)
    return {
        "week_start": this_week, "used": used, "cap": scope.cap_hours,
        "cap_plot": weekly_hours(weeks, scope.cap_hours, scope.note.cap.week_starts),
        "open": [(e, members[e.id]) for e in opened], "open_count": open_count,
        "handed_back": [(d, _sender(scope, d)) for d in back],
        "back_count": back_count,
        "deferred": deferred, "deferred_count": deferred_count,
        "week_query": f"since={this_week}&until={this_week + timedelta(days=6)}",
        "time_boxes": time_boxes(scope, local_day(scope, now)),
        "backlog": backlog, "dead": [(d, _target_key(d.target)) for d in dead],
        "dead_count": dead_count,
        "sources": [(source, at, at is not None and now - at > SILENT_AFTER)
                    for source, at in last.items()],
    }


def _sender(scope: Scope, row: Any) -> str:
    """Say who put a handed-back item on the CTO: its assigner, else its reporter when it
    was decided (as the monthly review counts it), else that nobody knows."""
    if row.assigner is not None:
        return str(row.assigner)
    if row.reporter is None:
        return "unknown"
    return f"{scope.person_for(row.source, row.reporter) or row.reporter} (reported it)"


def _target_key(target: str) -> str:
    return str(orjson.loads(target).get("key", "?"))

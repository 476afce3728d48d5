"""Decisions: a filterable, paged table, and one decision with its evidence and actions."""

from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response

from router.core.model import OUTCOMES, SOURCES, WorkItem
from router.db.item_json import item_from_json
from router.db.reads import decisions as reads
from router.db.reads.decisions import DecisionFilter
from router.http.pages.auth import Viewer
from router.http.pages.openapi import SESSION, answers, query
from router.http.pages.render import Pages
from router.http.params import IdBound, RecordId
from router.scope.load import Scope
from router.work.normalize import parse_delivery

PAGE_SIZE = 50
MAX_PAGE = 500
FILTERS = {"source": "a source", "outcome": "an outcome", "trigger": "a trigger's id",
           "owner": "a person of the scope note", "scope": "an owner line's name",
           "since": "the first day, YYYY-MM-DD", "until": "the last day, YYYY-MM-DD",
           "q": "part of an item's key or title"}


class BadFilter(ValueError):
    """A filter value the table cannot use; the message names it."""


def routes(router: APIRouter, pages: Pages, viewer: Any) -> None:
    """Add `/decisions` and `/decisions/{id}`."""

    @router.get("/decisions", response_class=HTMLResponse, responses=answers(*SESSION),
                openapi_extra=query(FILTERS, choices={"source": SOURCES, "outcome": OUTCOMES},
                                    days=("since", "until")))
    def list_page(request: Request, who: Annotated[Viewer, Depends(viewer)],
                  before: IdBound = None, after: IdBound = None,
                  limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE) -> Response:
        scope = pages.scope()
        given = {k: v.strip() for k in FILTERS if (v := request.query_params.get(k, ""))}
        context: dict[str, Any] = {"filters": given, "choices": _choices(scope),
                                   "error": None, "page": None, "briefs": {}}
        try:
            where = to_filter(given, scope)
        except BadFilter as exc:
            context["error"] = str(exc)
            return pages.render(request, "decisions.html", who, context, status=400)
        with pages.engine.connect() as conn:
            page = reads.list_decisions(conn, where, limit, before=before, after=after)
            briefs = reads.item_briefs(conn, [(r.source, r.item_id) for r in page.rows])
        shown = {**given, **({"limit": str(limit)} if limit != PAGE_SIZE else {})}
        context.update(page=page, briefs=briefs, query=_query(shown))
        return pages.render(request, "decisions.html", who, context)

    @router.get("/decisions/{decision_id}", response_class=HTMLResponse,
                responses=answers(*SESSION, 404))
    def detail_page(request: Request, decision_id: RecordId,
                    who: Annotated[Viewer, Depends(viewer)]) -> Response:
        with pages.engine.connect() as conn:
            row = reads.decision(conn, decision_id)
            if row is None:
                raise HTTPException(404, f"no decision {decision_id}")
            actions = reads.decision_actions(conn, [row.id])
            item, as_decided = _item(conn, row)
        scope = pages.scope()

        def person(account: str) -> str:
            """Show a tool account as the scope note's person key where it has one."""
            return (scope.person_for(item.source, account) if item else None) or account

        return pages.render(request, "decision.html", who, {
            "d": row, "item": item, "as_decided": as_decided, "person": person,
            "evidence": orjson.loads(row.evidence), "triggers": orjson.loads(row.triggers),
            "actions": [(a, orjson.loads(a.action)) for a in actions]})


def to_filter(given: dict[str, str], scope: Scope) -> DecisionFilter:
    """Turn the table's query parameters into a filter; dates are days in the note's zone."""
    source, outcome = given.get("source"), given.get("outcome")
    if source is not None and source not in SOURCES:
        raise BadFilter(f"source {source!r}: use one of {', '.join(SOURCES)}")
    if outcome is not None and outcome not in OUTCOMES:
        raise BadFilter(f"outcome {outcome!r}: use one of {', '.join(OUTCOMES)}")
    since, until = _day(given, "since", scope), _day(given, "until", scope)
    return DecisionFilter(
        source=source, outcome=outcome, trigger=given.get("trigger"),
        owner=given.get("owner"), scope_line=given.get("scope"), text=given.get("q"),
        since=since, until=until + timedelta(days=1) if until else None)


def _day(given: dict[str, str], name: str, scope: Scope) -> datetime | None:
    text = given.get(name)
    if text is None:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise BadFilter(f"{name} {text!r}: give a date as YYYY-MM-DD") from exc
    return datetime.combine(day, time(), scope.tz)


def _choices(scope: Scope) -> dict[str, list[str]]:
    return {"source": list(SOURCES), "outcome": list(OUTCOMES),
            "trigger": [t.id for t in scope.triggers], "owner": sorted(scope.people),
            "scope": [line.name for line in scope.owners]}


def _query(given: dict[str, str]) -> str:
    from urllib.parse import urlencode

    return urlencode(given)


def _item(conn: Any, row: Any) -> tuple[WorkItem | None, bool]:
    """Return the item as it was decided on (from its stored delivery), else its newest
    state, saying which (a timer's decision, or a delivery removed by retention)."""
    if row.inbox_id is not None:
        stored = reads.delivery(conn, row.inbox_id)
        if stored is not None:
            event = parse_delivery(stored.source, stored.event_type, stored.body,
                                   stored.received_at)
            if event.item is not None:
                return event.item, True
    if row.item_id is None:
        return None, False
    state = reads.item_state(conn, row.source, row.item_id)
    return (item_from_json(state), False) if state else (None, False)

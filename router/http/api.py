"""The read side (SPEC §6): decisions, escalations and the scope note, behind a bearer token."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from fastapi.responses import PlainTextResponse
from sqlalchemy import Engine

from router.core.durations import parse_since
from router.core.ledger import PAGE_STATES
from router.core.model import OUTCOMES, SOURCES
from router.db.reads import decisions as decision_reads
from router.db.reads import escalations as escalation_reads
from router.db.reads.decisions import DecisionFilter
from router.db.reads.escalations import STATES, Filter
from router.http.pages.auth import Access
from router.http.params import MAX_ID, RecordId, refuse_repeated
from router.http.reviews import reviews_api
from router.reviews.checklist import UnknownEscalation, build_review
from router.reviews.checklist_render import review_json, review_markdown
from router.scope.load import Scope
from router.settings import Settings

MAX_LIMIT = 1000
Responses = dict[int | str, dict[str, Any]]
_BAD: Responses = {400: {"description": "a filter or cursor that cannot be used, or a "
                                        "parameter given twice (the detail says why)"}}
_MISSING: Responses = {404: {"description": "no record with that id"}}
Since = Annotated[str | None, Query(
    description="a date (midnight in the scope note's timezone) or a time with an offset",
    json_schema_extra={"anyOf": [{"type": "string", "format": f} for f in ("date", "date-time")]})]
Cursor = Annotated[str | None, Query(description="the next_cursor of a previous answer",
                                     json_schema_extra={"pattern": "^[0-9]*$"})]


def read_api(settings: Settings, engine: Engine, scope: Callable[[], Scope]) -> APIRouter:
    """Build the /api/v1 router; every route needs `Authorization: Bearer <token>`, the
    API token or the read-only FIRSTLINE_READ_TOKEN (everything here only reads)."""
    access = Access(settings)  # the dashboard's login compares tokens the same way

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").strip().partition(" ")
        if access.role_for(given) is None or scheme.lower() != "bearer":
            raise HTTPException(401, "a valid bearer token is needed (FIRSTLINE_API_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorized), Depends(refuse_repeated)],
                    responses={401: {"description": "no valid bearer token"},
                               400: {"description": "a query parameter given twice"}})

    @api.get("/decisions", responses=_BAD)
    def list_decisions(
        source: Annotated[str | None, Query(json_schema_extra={"enum": list(SOURCES)})] = None,
        outcome: Annotated[str | None, Query(json_schema_extra={"enum": list(OUTCOMES)})] = None,
        item: str | None = None,
        since: Since = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        """List decisions, newest first; `next_cursor` pages on."""
        if source is not None and source not in SOURCES:
            raise HTTPException(400, f"unknown source {source!r}")
        if outcome is not None and outcome not in OUTCOMES:
            raise HTTPException(400, f"unknown outcome {outcome!r}")
        where = DecisionFilter(source=source, outcome=outcome, item=item,
                               since=_since(since, scope().tz) if since is not None else None)
        with engine.connect() as conn:
            page = decision_reads.list_decisions(conn, where, limit, before=_cursor(cursor))
        return {"items": [_decision(r) for r in page.rows],
                "next_cursor": str(page.rows[-1].id) if page.older else None}

    @api.get("/decisions/{decision_id}", responses=_MISSING)
    def get_decision(decision_id: RecordId) -> dict[str, Any]:
        with engine.connect() as conn:
            row = decision_reads.decision(conn, decision_id)
        if row is None:
            raise HTTPException(404, f"no decision {decision_id}")
        return {**_decision(row), "reason": row.reason, "severity": row.severity,
                "scope": row.scope_line, "evidence": orjson.loads(row.evidence),
                "actions": orjson.loads(row.actions), "scope_hash": row.scope_hash}

    @api.get("/escalations", responses=_BAD)
    def get_escalations(
        state: Annotated[str | None, Query(json_schema_extra={"enum": list(STATES)})] = None,
        trigger: str | None = None,
        page: Annotated[str | None, Query(json_schema_extra={"enum": list(PAGE_STATES)})] = None,
        since: Since = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        cursor: Cursor = None,
    ) -> dict[str, Any]:
        """List escalations, newest first, each with its page's real state."""
        start = _since(since, scope().tz) if since is not None else None
        wanted = Filter(state, trigger, page, start, limit, _cursor(cursor))
        if problems := wanted.problems():
            raise HTTPException(400, "; ".join(problems))
        with engine.connect() as conn:
            rows, more = escalation_reads.list_escalations(conn, wanted)
            found = escalation_reads.describe(conn, rows)
        return {"items": found, "next_cursor": str(more) if more is not None else None}

    @api.get("/escalations/{escalation_id}", responses=_MISSING)
    def get_escalation(escalation_id: RecordId) -> dict[str, Any]:
        with engine.connect() as conn:
            row = escalation_reads.escalation(conn, escalation_id)
            if row is None:
                raise HTTPException(404, f"no escalation {escalation_id}")
            return escalation_reads.describe(conn, [row])[0]

    @api.get("/escalations/{escalation_id}/review", response_model=None, responses={
        **_MISSING, 200: {"description": "the review checklist", "content": {
            "text/markdown": {"schema": {"type": "string"}},
            "application/json": {"schema": {"type": "object"}}}}})
    def get_review(escalation_id: RecordId, accept: Annotated[str | None, Header()] = None) \
            -> dict[str, Any] | PlainTextResponse:
        """Return the review checklist: Markdown, or JSON with Accept: application/json."""
        try:
            with engine.connect() as conn:
                review = build_review(conn, scope(), escalation_id, datetime.now(UTC))
        except UnknownEscalation as exc:
            raise HTTPException(404, str(exc)) from None
        if "application/json" in (accept or ""):
            return review_json(review)
        return PlainTextResponse(review_markdown(review), media_type="text/markdown")

    @api.get("/scope")
    def get_scope() -> dict[str, Any]:
        current = scope()
        return {"path": current.path, "hash": current.hash, "mode": current.mode,
                "note": current.note.model_dump(mode="json", by_alias=True, exclude_unset=True)}

    api.include_router(reviews_api(engine, scope))  # /reports/monthly, /exceptions
    return api


def _cursor(cursor: str | None) -> int | None:
    """Return where a page starts: `cursor=` is the first page, as no cursor is; a cursor
    past BIGINT means from the top (it overflowed the driver: 500)."""
    if not cursor:
        return None
    if not (cursor.isascii() and cursor.isdigit()):  # '²' is a digit to str.isdigit
        raise HTTPException(400, "cursor: use the next_cursor of a previous answer")
    return min(int(cursor), MAX_ID)


def _since(text: str, tz: ZoneInfo) -> datetime:
    try:
        return parse_since(text, tz)
    except ValueError as exc:
        raise HTTPException(400, f"since: {exc}") from None


def _decision(row: Any) -> dict[str, Any]:
    return {"id": row.id, "delivery_id": row.delivery_id, "source": row.source,
            "item_key": row.item_key, "outcome": row.outcome, "owner": row.owner,
            "triggers": orjson.loads(row.triggers), "event_at": row.event_at.isoformat(),
            "decided_at": row.decided_at.isoformat()}

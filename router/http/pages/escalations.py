"""Escalations: the list, and one escalation with its items, evidence, page, actions and
review checklist (router.reviews.checklist, as `firstline review` builds it)."""

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, Response

from router.db.reads import decisions as decision_reads
from router.db.reads import escalations as reads
from router.http.pages.auth import Viewer
from router.http.pages.openapi import SESSION, answers
from router.http.pages.render import Pages
from router.http.params import IdBound, RecordId
from router.reviews.checklist import build_review
from router.reviews.checklist_render import PAGE_WORDS

PAGE_SIZE = 50


def routes(router: APIRouter, pages: Pages, viewer: Any) -> None:
    """Add `/escalations` and `/escalations/{id}`."""

    @router.get("/escalations", response_class=HTMLResponse, responses=answers(*SESSION))
    def list_page(request: Request, who: Annotated[Viewer, Depends(viewer)],
                  state: str | None = None, before: IdBound = None) -> Response:
        if state is not None and state not in reads.STATES:
            state = None
        with pages.engine.connect() as conn:
            rows, older = reads.list_escalations(
                conn, reads.Filter(state=state, limit=PAGE_SIZE, cursor=before))
            members = reads.members(conn, [r.id for r in rows])
        return pages.render(request, "escalations.html", who, {
            "rows": [(r, members[r.id]) for r in rows], "state": state, "older": older})

    @router.get("/escalations/{escalation_id}", response_class=HTMLResponse,
                responses=answers(*SESSION, 404))
    def detail_page(request: Request, escalation_id: RecordId,
                    who: Annotated[Viewer, Depends(viewer)]) -> Response:
        with pages.engine.connect() as conn:
            row = reads.escalation(conn, escalation_id)
            if row is None:
                raise HTTPException(404, f"no escalation {escalation_id}")
            items = reads.members(conn, [row.id])[row.id]
            opened_by = decision_reads.decision(conn, row.decision_id)
            actions = reads.escalation_actions(conn, row, items)
            briefs = decision_reads.item_briefs(conn, [(m.source, m.item_id) for m in items])
            review = build_review(conn, pages.scope(), row.id, pages.clock())
        return pages.render(request, "escalation.html", who, {
            "e": row, "items": items, "briefs": briefs, "d": opened_by,
            "evidence": orjson.loads(opened_by.evidence) if opened_by else {},
            "actions": [(a, orjson.loads(a.action)) for a in actions],
            "review": review, "page_words": PAGE_WORDS})


"""The read API's reviews: `/api/v1/reports/monthly` and `/api/v1/exceptions` (SPEC §6).

Markdown by default; JSON with `Accept: application/json`, CSV with `Accept: text/csv`.
`month=YYYY-MM` in the scope note's timezone (default: the last complete month); any
other month is a 422 with one line saying what to send.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine

from router.reviews.exceptions import exception_log
from router.reviews.kept import month_review
from router.reviews.periods import BadMonth, Month, month_of
from router.reviews.render import monthly_csv, monthly_json, monthly_markdown
from router.reviews.render_log import log_csv, log_json, log_markdown
from router.scope.load import Scope

MARKDOWN = "text/markdown; charset=utf-8"
CSV = "text/csv; charset=utf-8"


def reviews_api(engine: Engine, scope: Callable[[], Scope]) -> APIRouter:
    """Build the routes; the read API includes them behind its bearer token."""
    api = APIRouter()

    @api.get("/reports/monthly", response_class=Response)
    def monthly(request: Request, month: str | None = None) -> Response:
        """The monthly review of `month` (default: the last complete month)."""
        current = scope()
        span = _month(month, current)
        with engine.connect() as conn:
            report = month_review(conn, current, span).report
        return _answer(request, lambda: monthly_markdown(report), lambda: monthly_json(report),
                       lambda: monthly_csv(report))

    @api.get("/exceptions", response_class=Response)
    def exceptions(request: Request, month: str | None = None) -> Response:
        """The exception log of `month` (default: the last complete month)."""
        current = scope()
        span = _month(month, current)
        with engine.connect() as conn:
            log = exception_log(conn, current, span)
        return _answer(request, lambda: log_markdown(log), lambda: log_json(log),
                       lambda: log_csv(log))

    return api


def _month(text: str | None, scope: Scope) -> Month:
    try:
        return month_of(text, scope.tz, scope.week_starts, datetime.now(UTC))
    except BadMonth as exc:
        raise HTTPException(422, str(exc)) from exc


def _answer(request: Request, markdown: Callable[[], str], as_json: Callable[[], Any],
            as_csv: Callable[[], str]) -> Response:
    accept = request.headers.get("accept", "")
    if "application/json" in accept:
        return JSONResponse(as_json())
    if "text/csv" in accept:
        return Response(as_csv(), media_type=CSV)
    return Response(markdown(), media_type=MARKDOWN)

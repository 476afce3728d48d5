"""Render the dashboard's templates: what every page shares (its viewer, the scope note's
timezone, the formats of times and hours) and the headers that keep pages private."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from router.http.pages.auth import Access, Viewer
from router.scope.load import Scope
from router.work.whatif import WhatIfRunner

HERE = Path(__file__).parent
STATIC = HERE / "static"
# Scripts only from this site (htmx); pygal's SVGs carry their own <style>, hence inline
# styles. Nothing may frame the pages.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
                               "style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                               "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


# htmx swaps in the answers to refused forms too (a what-if's problems, a retry that
# cannot be done); its default ignores every 4xx and 5xx. No inline styles of its own.
HX_CONFIG = orjson.dumps({"includeIndicatorStyles": False, "responseHandling": [
    {"code": "204", "swap": False}, {"code": "[2345]..", "swap": True}]}).decode()


@dataclass(frozen=True, slots=True)
class Pages:
    """What the page routes share."""

    engine: Engine
    scope: Callable[[], Scope]
    clock: Callable[[], datetime]
    access: Access
    templates: Jinja2Templates
    whatif: WhatIfRunner

    def render(self, request: Request, template: str, viewer: Viewer | None,
               context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
        """Render a template with the shared context and the private-page headers."""
        scope = self.scope()
        values = {"viewer": viewer, "tz": scope.tz, "mode": scope.mode, "now": self.clock(),
                  "path": request.url.path, **context}
        response = self.templates.TemplateResponse(request, template, values,
                                                   status_code=status)
        response.headers.update(HEADERS)
        return response


def make_templates() -> Jinja2Templates:
    """Return the Jinja2 environment, autoescaping on, with the dashboard's filters."""
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.filters.update(local=local_time, age=age, hours=hours, ids=ids)
    templates.env.globals.update(hx_config=HX_CONFIG)
    return templates


def local_time(moment: datetime | None, tz: ZoneInfo) -> str:
    """Format a time in the scope note's timezone: `2026-11-20 13:05 CET`."""
    if moment is None:
        return "–"
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z")


def age(moment: datetime | None, now: datetime) -> str:
    """Say how long ago: `45 min`, `3 h 20 min`, `2 d 4 h`."""
    if moment is None:
        return "–"
    return span(now - moment)


def span(delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hrs, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hrs} h"
    if hrs:
        return f"{hrs} h {mins} min"
    return f"{mins} min"


def ids(text: str) -> str:
    """Show a stored JSON list of trigger ids as `revenue-path, no-owner`."""
    return ", ".join(str(i) for i in orjson.loads(text))


def hours(value: float | None) -> str:
    return "–" if value is None else f"{value:g} h"

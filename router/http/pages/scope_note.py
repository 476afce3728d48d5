"""The scope note: its short list, and a what-if for an edited note (operators only)."""

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import UploadFile

from router.http.pages.auth import (
    Viewer,
    read_form,
    require_csrf,
    require_operator,
    text_field,
)
from router.http.pages.openapi import CSRF, SESSION, answers, form
from router.http.pages.render import Pages
from router.scope.load import Scope, ScopeError, parse_scope
from router.scope.text import describe_scope
from router.work.whatif import MAX_DAYS, MAX_DELIVERIES, WhatIfBusy, WhatIfTooSlow

MAX_NOTE_BYTES = 256 * 1024
DEFAULT_DAYS = 7
SHOWN_AS = "edited scope note"


def routes(router: APIRouter, pages: Pages, viewer: Any) -> None:
    """Add `/scope` and the what-if's POST."""

    @router.get("/scope", response_class=HTMLResponse, responses=answers(*SESSION))
    def scope_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
        scope = pages.scope()
        draft = _current_text(scope) if who.may_act else ""
        return pages.render(request, "scope.html", who, _context(scope, draft, DEFAULT_DAYS))

    @router.post("/scope/what-if", response_class=HTMLResponse,
                 responses=answers(*SESSION, 403, 411, 413, 422, 503), openapi_extra=form(
                     {"note": "the edited scope note", **CSRF}, files=("upload",),
                     numbers={"days": (1, MAX_DAYS)}))
    async def what_if(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
        form = await read_form(request)
        require_csrf(who, text_field(form, "csrf"))
        require_operator(who)
        scope = pages.scope()
        upload = form.get("upload")
        days = text_field(form, "days")
        raw, problem = await _note_bytes(text_field(form, "note"),
                                         upload if isinstance(upload, UploadFile) else None)
        context = _context(scope, raw.decode("utf-8", "replace"), DEFAULT_DAYS)
        context["tried"] = True
        template = "_whatif.html" if "hx-request" in request.headers else "scope.html"
        try:
            span = _days(days)
            context["days"] = span
            if problem:
                raise ValueError(problem)
            edited, warnings = parse_scope(raw, SHOWN_AS, scope.paging_service_id)
            context["warnings"] = warnings
            context["result"] = await pages.whatif.run(scope, edited, span, pages.clock())
        except ScopeError as exc:
            context["problems"] = exc.lines()
            context["bad_lines"] = {p.line for p in exc.problems}
            return pages.render(request, template, who, context, status=422)
        except (ValueError, WhatIfBusy, WhatIfTooSlow) as exc:
            context["error"] = str(exc)
            status = 422 if isinstance(exc, ValueError) else 503
            return pages.render(request, template, who, context, status=status)
        return pages.render(request, template, who, context)


def _context(scope: Scope, draft: str, days: int) -> dict[str, Any]:
    return {"summary": describe_scope(scope), "hash": scope.hash, "draft": draft,
            "days": days, "max_days": MAX_DAYS, "max_deliveries": MAX_DELIVERIES,
            "tried": False, "problems": [], "bad_lines": set(), "warnings": [],
            "error": None, "result": None}


async def _note_bytes(note: str, upload: UploadFile | None) -> tuple[bytes, str | None]:
    """Return the edited note (an uploaded file wins over the text box) and a problem."""
    if upload is not None and upload.filename:
        raw = await upload.read(MAX_NOTE_BYTES + 1)
    else:
        raw = note.replace("\r\n", "\n").encode()
    if len(raw) > MAX_NOTE_BYTES:
        return raw[:MAX_NOTE_BYTES], f"the scope note is over {MAX_NOTE_BYTES // 1024} KiB"
    if not raw.strip():
        return raw, "paste an edited scope note or choose a file"
    return raw, None


def _days(text: str) -> int:
    try:
        days = int(text or DEFAULT_DAYS)
    except ValueError as exc:
        raise ValueError(f"days {text!r}: give a whole number from 1 to {MAX_DAYS}") from exc
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days {days}: give a whole number from 1 to {MAX_DAYS}")
    return days


def _current_text(scope: Scope) -> str:
    """Return the note in force as its file holds it now, to start editing from."""
    try:
        return Path(scope.path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""

"""The dashboard: server-rendered pages at `/` for the CTO and the leads.

`mount_pages()` adds the login, the pages (this week, decisions, escalations, the monthly
review, the scope note and its what-if) and `/static` (the stylesheet and the vendored
htmx) to the app. Every page needs a session (router.http.pages.auth); the queries are
router.db.reads, and the monthly review's router.reviews.

The route modules do without `from __future__ import annotations`: FastAPI reads their
`Annotated[..., Depends(viewer)]` parameters at runtime, and `viewer` is a local name.
"""

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from http import HTTPStatus

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from markupsafe import escape
from sqlalchemy import Engine
from starlette.exceptions import HTTPException as StarletteHTTPException

from router.http.pages import decisions, escalations, month, scope_note, week
from router.http.pages.auth import (
    Access,
    Viewer,
    login_needed,
    read_form,
    require_csrf,
    safe_next,
    text_field,
)
from router.http.pages.openapi import CSRF, answers, form
from router.http.pages.render import STATIC, Pages, make_templates
from router.http.params import refuse_repeated
from router.scope.load import Scope
from router.settings import Settings
from router.work.whatif import WhatIfRunner


def utcnow() -> datetime:
    return datetime.now(UTC)


def mount_pages(app: FastAPI, settings: Settings, engine: Engine, scope: Callable[[], Scope],
                clock: Callable[[], datetime] = utcnow) -> Pages:
    """Add the dashboard to `app`; return what its routes share."""
    pages = Pages(engine, scope, clock, Access(settings), make_templates(),
                  WhatIfRunner(engine))

    def viewer(request: Request) -> Viewer:
        who = pages.access.viewer(request)
        if who is None:
            raise login_needed(request)
        refuse_repeated(request)  # only now: without a session nothing is looked at
        return who

    router = APIRouter(tags=["dashboard"])
    _login_routes(router, pages, viewer)
    for module in (week, decisions, escalations, month, scope_note):
        module.routes(router, pages, viewer)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_exception_handler(StarletteHTTPException, _errors(pages))
    return pages


PAGE_PATHS = ("/login", "/logout", "/decisions", "/escalations", "/month", "/scope",
              "/actions")


def _errors(pages: Pages) -> Callable[[Request, Exception], Awaitable[Response]]:
    """Answer a page's 4xx/5xx as HTML (a fragment for htmx, which swaps it in); the
    API, redirects and every other path keep FastAPI's JSON answer."""
    async def handle(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        path = request.url.path
        is_page = path == "/" or path.startswith(PAGE_PATHS)
        if not is_page or exc.status_code < 400:
            return await http_exception_handler(request, exc)
        if "hx-request" in request.headers:
            response: Response = HTMLResponse(
                f'<p class="error" role="alert">{escape(str(exc.detail))}</p>',
                status_code=exc.status_code)
        else:
            response = pages.render(request, "error.html", pages.access.viewer(request), {
                "status": exc.status_code, "detail": exc.detail,
                "phrase": HTTPStatus(exc.status_code).phrase}, status=exc.status_code)
        response.headers.update(exc.headers or {})
        return response

    return handle


def _login_routes(router: APIRouter, pages: Pages, viewer: Callable[[Request], Viewer]) -> None:
    @router.get("/login", response_class=HTMLResponse, responses=answers(400))
    def login_form(request: Request, next: str = "/") -> Response:
        refuse_repeated(request)
        return _login_page(request, pages, next)

    @router.post("/login", responses=answers(303, 401, 403, 411, 413), openapi_extra=form(
        {"token": "FIRSTLINE_API_TOKEN or FIRSTLINE_READ_TOKEN",
         "next": "the path to go to afterwards", **CSRF}))
    async def login(request: Request) -> Response:
        form = await read_form(request)
        token, csrf = text_field(form, "token"), text_field(form, "csrf")
        next = text_field(form, "next") or "/"
        if not pages.access.login_nonce_ok(request, csrf):
            return _login_page(request, pages, next, "The form expired: try again.", 403)
        role = pages.access.role_for(token)
        if role is None:
            return _login_page(request, pages, next, "That token is not valid here.", 401)
        response = RedirectResponse(safe_next(next), status_code=303)
        pages.access.start(request, response, role)
        return response

    # Without a session there is nothing to end: the form's fields do not matter then.
    @router.post("/logout", responses=answers(303, 403, 411, 413),
                 openapi_extra=form(CSRF, required=()))
    async def logout(request: Request) -> Response:
        who = pages.access.viewer(request)
        if who is not None:
            require_csrf(who, text_field(await read_form(request), "csrf"))
        response = RedirectResponse("/login", status_code=303)
        pages.access.end(response)
        return response


def _login_page(request: Request, pages: Pages, next: str, error: str | None = None,
                status: int = 200) -> Response:
    nonce, signed = pages.access.login_nonce()
    response = pages.render(request, "login.html", None, {
        "next": safe_next(next), "error": error, "configured": pages.access.configured,
        "nonce": nonce}, status=status)
    pages.access.set_login_cookie(request, response, signed)
    return response

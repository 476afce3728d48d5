"""Who may see the dashboard: a login form turns a token into a signed session cookie.

Two roles. `operator` logs in with FIRSTLINE_API_TOKEN and may also retry dead actions
and run what-ifs; `reader` logs in with FIRSTLINE_READ_TOKEN and sees every page.

The session is a cookie signed and timestamped with itsdangerous (the library Starlette's
own SessionMiddleware signs with), set here rather than by that middleware because the
checks live in dependencies (webhooks bypass the app's middleware, router.http.app) and
because its `Secure` flag is decided per request: set when the request came over HTTPS.
The cookie is HttpOnly and SameSite=Strict and expires after `SESSION_SECONDS`; its key is
derived from the tokens, so changing a token ends every session made with the old one.

Every form carries a CSRF token: the session's own, compared on each POST. The login
form, which has no session yet, uses a short-lived signed cookie of its own instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote

from fastapi import HTTPException, Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import SecretStr
from starlette.datastructures import UploadFile

from router.settings import Settings

Role = Literal["operator", "reader"]
SESSION_COOKIE = "firstline_session"
LOGIN_COOKIE = "firstline_login"
SESSION_SECONDS = 12 * 3600
LOGIN_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Viewer:
    """Someone logged in: their role and the CSRF token their forms carry."""

    role: Role
    csrf: str

    @property
    def may_act(self) -> bool:
        return self.role == "operator"


class Access:
    """Check tokens, issue and read session cookies, check CSRF tokens."""

    def __init__(self, settings: Settings) -> None:
        given: tuple[tuple[SecretStr | None, Role], ...] = (
            (settings.api_token, "operator"), (settings.read_token, "reader"))
        tokens = [(secret.get_secret_value().encode(), role)
                  for secret, role in given if secret is not None]
        self._tokens = [(hashlib.sha256(token).digest(), role) for token, role in tokens]
        seed = b"\0".join(token for token, _ in tokens)
        key = hmac.new(b"firstline dashboard session", seed, hashlib.sha256).hexdigest()
        self._sessions = URLSafeTimedSerializer(key, salt="session")
        self._logins = URLSafeTimedSerializer(key, salt="login")

    @property
    def configured(self) -> bool:
        return bool(self._tokens)

    def role_for(self, given: str) -> Role | None:
        """Return the role a token grants (the login form and the read API ask); every
        configured token is compared, in constant time, as SHA-256 digests, so the
        answer's timing says nothing about which one was close nor about its length."""
        found: Role | None = None
        candidate = given.strip().encode()
        digest = hashlib.sha256(candidate).digest()
        for token, role in self._tokens:
            if hmac.compare_digest(digest, token) and candidate and found is None:
                found = role
        return found

    def viewer(self, request: Request) -> Viewer | None:
        """Return who the session cookie names, or None (no cookie, forged, expired)."""
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie or not self._tokens:
            return None
        try:
            data = self._sessions.loads(cookie, max_age=SESSION_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("role") not in ("operator", "reader"):
            return None
        return Viewer(data["role"], str(data.get("csrf", "")))

    def start(self, request: Request, response: Response, role: Role) -> None:
        """Set a new session cookie (a fresh CSRF token with it) and drop the login one."""
        value = self._sessions.dumps({"role": role, "csrf": secrets.token_urlsafe(32)})
        _set(request, response, SESSION_COOKIE, value, SESSION_SECONDS)
        response.delete_cookie(LOGIN_COOKIE, path="/login")

    def end(self, response: Response) -> None:
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")

    def login_nonce(self) -> tuple[str, str]:
        """Return a login form's CSRF token and the signed value of its cookie."""
        nonce = secrets.token_urlsafe(32)
        return nonce, self._logins.dumps(nonce)

    def set_login_cookie(self, request: Request, response: Response, signed: str) -> None:
        _set(request, response, LOGIN_COOKIE, signed, LOGIN_SECONDS, path="/login")

    def login_nonce_ok(self, request: Request, given: str) -> bool:
        cookie = request.cookies.get(LOGIN_COOKIE)
        if not cookie:
            return False
        try:
            nonce = self._logins.loads(cookie, max_age=LOGIN_SECONDS)
        except BadSignature:
            return False
        return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), given.encode())


def _set(request: Request, response: Response, name: str, value: str, seconds: int,
         path: str = "/") -> None:
    response.set_cookie(name, value, max_age=seconds, path=path, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https")


MAX_FORM_BYTES = 320 * 1024  # the largest form: a what-if's scope note (256 KiB) and a little


async def read_form(request: Request) -> dict[str, str | UploadFile]:
    """Read a posted form after the session was checked, refusing one over
    MAX_FORM_BYTES before reading it (FastAPI would read a `Form()` parameter's body,
    whatever its size, before any dependency ran)."""
    length = request.headers.get("content-length", "")
    if not length.isdigit():
        raise HTTPException(411, "send the form with a Content-Length")
    if int(length) > MAX_FORM_BYTES:
        raise HTTPException(413, f"the form is over {MAX_FORM_BYTES // 1024} KiB")
    form = await request.form(max_files=1, max_fields=20, max_part_size=MAX_FORM_BYTES)
    return {key: value for key, value in form.items()}


def text_field(form: dict[str, str | UploadFile], name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def require_csrf(viewer: Viewer, given: str | None) -> None:
    """Refuse a form whose CSRF token is not the session's (403)."""
    if not given or not hmac.compare_digest(given.encode(), viewer.csrf.encode()):
        raise HTTPException(403, "the form has expired or did not come from this site: "
                                 "reload the page and try again")


def require_operator(viewer: Viewer) -> None:
    if not viewer.may_act:
        raise HTTPException(403, "read-only login: log in with FIRSTLINE_API_TOKEN to do this")


def login_needed(request: Request) -> HTTPException:
    """Return what a request without a session gets: a page view is sent to the login
    form (and back afterwards); anything else, htmx included, gets 401 and no data."""
    if request.method == "GET" and "hx-request" not in request.headers:
        target = quote(safe_next(request.url.path + (f"?{request.url.query}"
                                                     if request.url.query else "")))
        return HTTPException(303, "log in first", headers={"Location": f"/login?next={target}"})
    return HTTPException(401, "log in first", headers={"HX-Redirect": "/login"})


def safe_next(target: str | None) -> str:
    """Return a path on this site to go to after logging in; anything else goes home."""
    if not target or not target.startswith("/") or target.startswith("//") \
            or "\\" in target or target.startswith("/login"):
        return "/"
    return target

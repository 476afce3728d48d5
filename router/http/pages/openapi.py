"""How the dashboard's routes appear in /openapi.json: their HTML answers and their forms.

The forms are read by hand after the session is checked (router.http.pages.auth
`read_form`), so FastAPI cannot see their fields; they are described here instead, and
so are the query filters the decisions table reads from the query string. With them in
the schema, the tests drive every page and form with generated requests like every
other route (tests/test_pages_fuzz.py).
"""

from __future__ import annotations

from typing import Any

Responses = dict[int | str, dict[str, Any]]
_HTML = {"text/html": {"schema": {"type": "string"}}}


def answers(*codes: int) -> Responses:
    """Return the documented answers of a page route besides its 200: HTML, but for a
    redirect's empty body and FastAPI's own 422."""
    why = {303: "no session: the login form (a page view), or where a form sends next",
           400: "a query parameter given twice, or a filter the table cannot use (the "
                "page says which)",
           401: "no session (htmx and form posts), or a wrong token at the login form",
           403: "the form's CSRF token is not the session's, or a read-only login",
           404: "no record with that id",
           409: "the action cannot be retried (not dead, or a performer holds it)",
           411: "the form came without a Content-Length",
           413: "the form is over 320 KiB",
           422: "the what-if's note, days or upload cannot be used (the page says why), or "
                "a parameter of the wrong type (JSON, as everywhere)",
           503: "another what-if is running, or this one took too long"}
    out: Responses = {code: {"description": why[code], "content": _HTML} for code in codes}
    if 303 in codes:
        del out[303]["content"]
    if 422 in codes:
        out[422]["content"] = {**_HTML, "application/json": {"schema": {}}}
    return out


def form(fields: dict[str, str], *, files: tuple[str, ...] = (),
         numbers: dict[str, tuple[int, int]] | None = None,
         required: tuple[str, ...] = ("csrf",)) -> dict[str, Any]:
    """Return `openapi_extra` for a route that reads a form of text `fields` (name:
    description), whole `numbers` (name: lowest, highest) and, when `files` are named,
    file uploads (then multipart)."""
    properties: dict[str, Any] = {name: {"type": "string", "description": text}
                                  for name, text in fields.items()}
    for name, (low, high) in (numbers or {}).items():
        properties[name] = {"type": "integer", "minimum": low, "maximum": high}
    for name in files:
        properties[name] = {"type": "string", "format": "binary"}
    kind = "multipart/form-data" if files else "application/x-www-form-urlencoded"
    return {"requestBody": {"required": True, "content": {kind: {"schema": {
        "type": "object", "properties": properties, "required": list(required)}}}}}


def query(names: dict[str, str], *, choices: dict[str, tuple[str, ...]] | None = None,
          days: tuple[str, ...] = ()) -> dict[str, Any]:
    """Return `openapi_extra` naming query parameters a route reads from the query
    string itself (name: description), each optional; those with `choices` take one of
    them and those in `days` a date. Each may also be empty, as a filter form's "any"
    sends it, which means no filter."""
    def schema(name: str) -> dict[str, Any]:
        if name in (choices or {}):
            return {"type": "string", "enum": ["", *(choices or {})[name]]}
        if name in days:
            return {"anyOf": [{"type": "string", "format": "date"}, {"enum": [""]}]}
        return {"type": "string"}

    return {"parameters": [{"name": name, "in": "query", "required": False,
                            "description": text, "schema": schema(name)}
                           for name, text in names.items()]}


CSRF = {"csrf": "the CSRF token of the page the form came from"}

# Every page and form needs a session: without one a page view is sent to the login form
# (303) and anything else gets 401; with one, a query parameter given twice is a 400.
SESSION = (303, 401, 400)

"""Outbound: act in jira.

Jira Cloud REST API v2, through the `jira` package's session (auth, TLS settings and
timeouts in one place). The client is built on first use with get_server_info=False, so
nothing touches the network at start-up, and with max_retries=0: its session would
otherwise retry 429/503 itself and sleep, hiding Retry-After from firstline's retrier.
Requests go to the session directly because `assign_issue` picks its user by a fuzzy
search (pycontribs/jira#1284) and `add_comment` cannot attach a comment property.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
from jira import JIRA, JIRAError
from jira.resilientsession import parse_error_msg

from adapters.base import (
    Created,
    OutboundAction,
    Result,
    Stop,
    marker,
    retry_after_value,
    review_label,
    scrubbed,
)
from adapters.jira.inbound import _account
from router.settings import Settings

TIMEOUT = 10.0  # seconds, on every call
COMMENT_PROPERTY = "firstline"  # comment property key holding {"action": <outbox id>}
_API = "/rest/api/2"
_COMMENTS_PER_PAGE = 100
_IDS_PER_LOOKUP = 100  # ids per POST /comment/list (the API takes up to 1000)
_RETRYABLE = frozenset({408, 429})


class JiraOutbound:
    """Assign, unassign, comment and label Jira issues, each at most once in effect.

    Every action reads before it writes (the assignee, the labels, the comments'
    `firstline` property), so a retry after a crash finds its own earlier work.
    """

    def __init__(
        self, settings: Settings, timeout: float = TIMEOUT, clock: Callable[[], float] = time.time
    ) -> None:
        self._server = settings.jira_url.rstrip("/")
        self._email = settings.jira_email
        self._token = settings.jira_api_token
        self._timeout = timeout
        self._clock = clock
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types Jira performs here (the outbox routes only these)."""
        return frozenset(_HANDLERS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action; vendor trouble becomes a Result, never an exception."""
        handler = _HANDLERS.get(action.type)
        if handler is None:
            return Result("permanent", f"{_what(action)}: not a Jira action")
        try:
            result = handler(self, action)
        except Stop as stop:
            result = stop.result
        return self._scrubbed(result)

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            self._session.close()

    # -- actions ------------------------------------------------------------------

    def _assign(self, action: OutboundAction) -> Result:
        """Give the issue to `account`, replacing the CTO but no one a person chose since."""
        account = _required(action, action.account, "account")
        current = self._assignee(action)
        if current == account:
            return Result("ok", f"{_what(action)}: already assigned to {account}")
        if current is not None and current not in action.remove:
            return Result("ok", f"{_what(action)}: left alone, {current} was assigned since")
        self._call(action, "PUT", f"issue/{_issue(action)}/assignee", body={"accountId": account})
        return Result("ok", f"{_what(action)}: assigned to {account}")

    def _unassign(self, action: OutboundAction) -> Result:
        """Clear the assignee, but only while it is one of the accounts to remove."""
        current = self._assignee(action)
        if current is None or current not in action.remove:
            return Result("ok", f"{_what(action)}: none of {list(action.remove)} is assigned")
        self._call(action, "PUT", f"issue/{_issue(action)}/assignee", body={"accountId": None})
        return Result("ok", f"{_what(action)}: unassigned {current}")

    def _comment(self, action: OutboundAction) -> Result:
        """Add the comment unless an earlier attempt already did (its property says so;
        a first try has nothing to look for)."""
        text = _required(action, action.text, "text")
        if not action.first_try and self._commented(action):
            return Result("ok", f"{_what(action)}: already commented")
        prop = {"key": COMMENT_PROPERTY, "value": {"action": action.id}}
        body = {"body": text, "properties": [prop]}
        self._call(action, "POST", f"issue/{_issue(action)}/comment", body=body)
        return Result("ok", f"{_what(action)}: commented")

    def _label(self, action: OutboundAction) -> Result:
        """Add the label if the issue does not carry it yet (compared ignoring case)."""
        label = _required(action, action.label, "label")
        fields = self._fields(action, "labels")
        labels = fields.get("labels")
        if isinstance(labels, list) and label.casefold() in (str(x).casefold() for x in labels):
            return Result("ok", f"{_what(action)}: already labelled {label}")
        body = {"update": {"labels": [{"add": label}]}}
        self._call(action, "PUT", f"issue/{_issue(action)}", body=body)
        return Result("ok", f"{_what(action)}: labelled {label}")

    def _file_review(self, action: OutboundAction) -> Result:
        """Create the review issue in `target.project` (issue type `target.kind`), assigned
        to `account`, unless an earlier attempt did. The issue carries the label
        `firstline-review-<escalation>` and a `firstline` property naming the action; a
        retry looks for the label with JQL. Jira's search is eventually consistent: a
        retry within seconds of a create that timed out after Jira made the issue may not
        see it yet (Jira offers no idempotency key to do better)."""
        title = _required(action, action.title, "title")
        project = _required(action, action.target.project, "project")
        label = review_label(action)
        key = None if action.first_try else self._find_review(action, project, label)
        if key is None:
            fields: dict[str, Any] = {
                "project": {"key": project}, "summary": title,
                "description": f"{action.text or ''}\n\n({marker(action.id)})",
                "issuetype": {"name": action.target.kind or "Task"},
                "labels": [*action.labels, label]}
            if action.account:
                fields["assignee"] = {"accountId": action.account}
            body = {"fields": fields,
                    "properties": [{"key": COMMENT_PROPERTY, "value": {"action": action.id}}]}
            answer = _json(action, self._call(action, "POST", "issue", body=body))
            key = answer.get("key") if isinstance(answer, dict) else None
            if not isinstance(key, str) or not key:
                raise Stop(Result("retryable", f"{_what(action)}: Jira did not say which "
                                               "issue it created"))
        created = Created(key, f"{self._server}/browse/{key}")
        return Result("ok", f"{_what(action)}: filed {key}", created=created)

    def _find_review(self, action: OutboundAction, project: str, label: str) -> str | None:
        """Return the key of the project's issue carrying the review's label, or None."""
        jql = f"project = {_quoted(project)} AND labels = {_quoted(label)}"
        data = _json(action, self._call(action, "GET", "search/jql",
                                        params={"jql": jql, "fields": "summary"}))
        found = data.get("issues") if isinstance(data, dict) else None
        for issue in found if isinstance(found, list) else ():
            if isinstance(issue, dict) and isinstance(issue.get("key"), str):
                return str(issue["key"])
        return None

    # -- reads --------------------------------------------------------------------

    def _fields(self, action: OutboundAction, fields: str) -> dict[str, Any]:
        """Read some fields of the issue (`GET /issue/{id}?fields=...`)."""
        response = self._call(action, "GET", f"issue/{_issue(action)}", params={"fields": fields})
        data = _json(action, response)
        found = data.get("fields") if isinstance(data, dict) else None
        if not isinstance(found, dict):
            raise Stop(Result("permanent", f"{_what(action)}: Jira sent an issue without fields"))
        return found

    def _assignee(self, action: OutboundAction) -> str | None:
        """Return the current assignee's accountId, or None when unassigned."""
        return _account(self._fields(action, "assignee").get("assignee"))

    def _commented(self, action: OutboundAction) -> bool:
        """Tell whether a comment on the issue carries this action's property.

        Listing an issue's comments documents no `properties` expansion; looking comments
        up by id (`POST /comment/list?expand=properties`) does, so both are used.
        """
        ids = self._comment_ids(action)
        for start in range(0, len(ids), _IDS_PER_LOOKUP):
            if self._lookup(action, ids[start : start + _IDS_PER_LOOKUP]):
                return True
        return False

    def _lookup(self, action: OutboundAction, ids: list[int]) -> bool:
        """Look comments up by id with their properties; ask again for any a short page left."""
        while ids:
            response = self._call(
                action, "POST", "comment/list", params={"expand": "properties"}, body={"ids": ids}
            )
            data = _json(action, response)
            data = data if isinstance(data, dict) else {}
            values = data.get("values")
            values = [c for c in values if isinstance(c, dict)] if isinstance(values, list) else []
            if any(_carries(c, action.id) for c in values):
                return True
            if not values or data.get("isLast", True) is not False:
                return False
            seen = {str(c.get("id")) for c in values}
            ids = [i for i in ids if str(i) not in seen]
        return False

    def _comment_ids(self, action: OutboundAction) -> list[int]:
        """List the ids of all the issue's comments, page by page."""
        ids: list[int] = []
        start = 0
        while True:
            params = {"startAt": str(start), "maxResults": str(_COMMENTS_PER_PAGE)}
            data = _json(action, self._call(
                action, "GET", f"issue/{_issue(action)}/comment", params=params
            ))
            page = data.get("comments") if isinstance(data, dict) else None
            if not isinstance(page, list) or not page:
                return ids
            ids.extend(int(c["id"]) for c in page
                       if isinstance(c, dict) and str(c.get("id", "")).isdigit())
            start += len(page)
            total = data.get("total")
            if not isinstance(total, int) or start >= total:
                return ids

    # -- HTTP ---------------------------------------------------------------------

    def _client(self, action: OutboundAction) -> requests.Session:
        """Build the `jira` client's session on first use; refuse when unconfigured."""
        if self._email is None or self._token is None:
            raise Stop(Result(
                "permanent",
                f"{_what(action)}: FIRSTLINE_JIRA_EMAIL and FIRSTLINE_JIRA_API_TOKEN are not set",
            ))
        with self._lock:
            if self._session is None:
                client = JIRA(
                    server=self._server,
                    basic_auth=(self._email, self._token.get_secret_value()),
                    get_server_info=False,
                    max_retries=0,
                    timeout=self._timeout,
                )
                self._session = client._session
            return self._session

    def _call(
        self,
        action: OutboundAction,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
    ) -> requests.Response:
        """Send one request; a refusal or transport failure stops the action with a Result.

        Only reads follow redirects: a redirected POST can turn into a GET and look like
        success, so a write that is redirected stops as permanent, naming where to.
        """
        session = self._client(action)
        url = f"{self._server}{_API}/{path}"
        data = json.dumps(body) if body is not None else None
        where = f"{method} {_API}/{path}"
        try:
            response = session.request(
                method, url, params=params, data=data, allow_redirects=method == "GET"
            )
        except JIRAError as exc:
            raise Stop(self._refusal(action, where, exc)) from None
        except requests.exceptions.Timeout:
            detail = f"{_what(action)}: Jira did not answer {where} within {self._timeout:g}s"
            raise Stop(Result("retryable", detail)) from None
        except requests.exceptions.ConnectionError as exc:
            detail = f"{_what(action)}: could not reach Jira for {where}: {type(exc).__name__}"
            raise Stop(Result("retryable", detail)) from None
        except requests.exceptions.RequestException as exc:
            detail = f"{_what(action)}: {where} failed: {type(exc).__name__}"
            raise Stop(Result("permanent", detail)) from None
        if response.is_redirect:
            moved = response.headers.get("Location", "somewhere else")
            detail = f"{_what(action)}: Jira redirected {where} to {moved}"
            raise Stop(Result("permanent", detail))
        return response

    def _refusal(self, action: OutboundAction, where: str, exc: JIRAError) -> Result:
        """Classify an HTTP refusal: 408, 429 and 5xx are retryable, other 4xx permanent.

        Built from the status and Jira's error messages only: `str(JIRAError)` carries
        request headers and bodies.
        """
        status, response = exc.status_code, exc.response
        message = parse_error_msg(response) if response is not None else ""
        detail = f"{_what(action)}: Jira answered {status} to {where}"
        detail = f"{detail}: {message}" if message else detail
        if status is None or status in _RETRYABLE or status >= 500:
            headers = response.headers if response is not None else {}
            wait = retry_after_value(headers.get("Retry-After"), self._clock())
            if wait is None and status == 429:
                wait = _reset_in(headers.get("X-RateLimit-Reset"), self._clock())
            return Result("retryable", detail, retry_after=wait)
        return Result("permanent", detail)

    def _scrubbed(self, result: Result) -> Result:
        """Make sure the API token never leaves in a detail, whatever Jira echoed."""
        return scrubbed(result, [self._token.get_secret_value() if self._token else ""])


_Handler = Callable[[JiraOutbound, OutboundAction], Result]
_HANDLERS: dict[str, _Handler] = {
    "assign": JiraOutbound._assign,
    "unassign": JiraOutbound._unassign,
    "comment": JiraOutbound._comment,
    "label": JiraOutbound._label,
    "file_review": JiraOutbound._file_review,
}


def outbound(settings: Settings, timeout: float = TIMEOUT) -> JiraOutbound:
    """Return the Jira outbound adapter; it opens no connection until its first action."""
    return JiraOutbound(settings, timeout=timeout)


def _what(action: OutboundAction) -> str:
    """Name the action and the issue it is about, for Result details."""
    return f"{action.type} {action.target.key}"


def _issue(action: OutboundAction) -> str:
    """Return the issue's immutable id for URLs (keys change when issues move)."""
    return quote(action.target.id or action.target.key, safe="")


def _required(action: OutboundAction, value: str | None, field: str) -> str:
    """Return a field the action cannot do without, or stop it as permanent."""
    if not value:
        raise Stop(Result("permanent", f"{_what(action)}: the action has no {field}"))
    return value


def _quoted(value: str) -> str:
    """Quote a value for JQL."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _json(action: OutboundAction, response: requests.Response) -> Any:
    """Decode a JSON answer; anything else means this is not the Jira API answering."""
    try:
        return response.json()
    except ValueError:
        detail = f"{_what(action)}: Jira answered {response.status_code} without JSON"
        raise Stop(Result("permanent", detail)) from None


def _carries(comment: Any, action_id: int) -> bool:
    """Tell whether a comment holds firstline's property for this action id."""
    props = comment.get("properties") if isinstance(comment, dict) else None
    for prop in props if isinstance(props, list) else ():
        if not isinstance(prop, dict) or prop.get("key") != COMMENT_PROPERTY:
            continue
        value = prop.get("value")
        if isinstance(value, dict) and value.get("action") == action_id:
            return True
    return False


def _reset_in(value: str | None, now: float) -> float | None:
    """Read Jira's X-RateLimit-Reset (ISO 8601, e.g. `2026-11-21T19:45Z`) as seconds."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)

"""Outbound: act on Jira issues (assign, unassign, comment, label, file a review issue).

The actions and the reads each makes before it writes live here; sending a request and
classifying Jira's answer live in `client`, so each action reads as the steps it takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from adapters.base import (
    Created,
    OutboundAction,
    Result,
    Stop,
    marker,
    review_label,
)
from adapters.jira.client import JiraClient, read_json, what
from adapters.jira.items import account_id
from router.settings import Settings

TIMEOUT = 10.0  # seconds, on every call
COMMENT_PROPERTY = "firstline"  # comment property key holding {"action": <outbox id>}
_COMMENTS_PER_PAGE = 100
_IDS_PER_LOOKUP = 100  # ids per POST /comment/list (the API takes up to 1000)


class JiraOutbound:
    """Assign, unassign, comment and label Jira issues, and file review tickets, each
    at most once in effect.

    Every action reads before it writes (the assignee, the labels, the comments'
    `firstline` property), so a retry after a crash finds its own earlier work.
    """

    def __init__(
        self, settings: Settings, timeout: float = TIMEOUT, clock: Callable[[], float] = time.time
    ) -> None:
        self._api = JiraClient(settings, timeout, clock)

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types Jira performs here (the outbox routes only these)."""
        return frozenset(_HANDLERS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action; vendor trouble becomes a Result, never an exception."""
        handler = _HANDLERS.get(action.type)
        if handler is None:
            return Result("permanent", f"{what(action)}: not a Jira action")
        try:
            result = handler(self, action)
        except Stop as stop:
            result = stop.result
        return self._api.scrubbed(result)

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        self._api.close()

    # -- actions ------------------------------------------------------------------

    def _assign(self, action: OutboundAction) -> Result:
        """Give the issue to `account`, replacing the CTO but no one a person chose since."""
        account = _required(action, action.account, "account")
        current = self._assignee(action)
        if current == account:
            return Result("ok", f"{what(action)}: already assigned to {account}")
        if current is not None and current not in action.remove:
            return Result("ok", f"{what(action)}: left alone, {current} was assigned since")
        self._api.call(
            action, "PUT", f"issue/{_issue(action)}/assignee", body={"accountId": account}
        )
        return Result("ok", f"{what(action)}: assigned to {account}")

    def _unassign(self, action: OutboundAction) -> Result:
        """Clear the assignee, but only while it is one of the accounts to remove."""
        current = self._assignee(action)
        if current is None or current not in action.remove:
            return Result("ok", f"{what(action)}: none of {list(action.remove)} is assigned")
        self._api.call(action, "PUT", f"issue/{_issue(action)}/assignee", body={"accountId": None})
        return Result("ok", f"{what(action)}: unassigned {current}")

    def _comment(self, action: OutboundAction) -> Result:
        """Add the comment unless an earlier attempt already did (its property says so;
        a first try has nothing to look for)."""
        text = _required(action, action.text, "text")
        if not action.first_try and self._commented(action):
            return Result("ok", f"{what(action)}: already commented")
        prop = {"key": COMMENT_PROPERTY, "value": {"action": action.id}}
        body = {"body": text, "properties": [prop]}
        self._api.call(action, "POST", f"issue/{_issue(action)}/comment", body=body)
        return Result("ok", f"{what(action)}: commented")

    def _label(self, action: OutboundAction) -> Result:
        """Add the label if the issue does not carry it yet (compared ignoring case)."""
        label = _required(action, action.label, "label")
        fields = self._fields(action, "labels")
        labels = fields.get("labels")
        if isinstance(labels, list) and label.casefold() in (str(x).casefold() for x in labels):
            return Result("ok", f"{what(action)}: already labelled {label}")
        body = {"update": {"labels": [{"add": label}]}}
        self._api.call(action, "PUT", f"issue/{_issue(action)}", body=body)
        return Result("ok", f"{what(action)}: labelled {label}")

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
            answer = read_json(action, self._api.call(action, "POST", "issue", body=body))
            key = answer.get("key") if isinstance(answer, dict) else None
            if not isinstance(key, str) or not key:
                raise Stop(Result("retryable", f"{what(action)}: Jira did not say which "
                                               "issue it created"))
        created = Created(key, f"{self._api.server}/browse/{key}")
        return Result("ok", f"{what(action)}: filed {key}", created=created)

    def _find_review(self, action: OutboundAction, project: str, label: str) -> str | None:
        """Return the key of the project's issue carrying the review's label, or None."""
        jql = f"project = {_quoted(project)} AND labels = {_quoted(label)}"
        data = read_json(action, self._api.call(action, "GET", "search/jql",
                                                params={"jql": jql, "fields": "summary"}))
        found = data.get("issues") if isinstance(data, dict) else None
        for issue in found if isinstance(found, list) else ():
            if isinstance(issue, dict) and isinstance(issue.get("key"), str):
                return str(issue["key"])
        return None

    # -- reads --------------------------------------------------------------------

    def _fields(self, action: OutboundAction, fields: str) -> dict[str, Any]:
        """Read some fields of the issue (`GET /issue/{id}?fields=...`)."""
        response = self._api.call(
            action, "GET", f"issue/{_issue(action)}", params={"fields": fields}
        )
        data = read_json(action, response)
        found = data.get("fields") if isinstance(data, dict) else None
        if not isinstance(found, dict):
            raise Stop(Result("permanent", f"{what(action)}: Jira sent an issue without fields"))
        return found

    def _assignee(self, action: OutboundAction) -> str | None:
        """Return the current assignee's accountId, or None when unassigned."""
        return account_id(self._fields(action, "assignee").get("assignee"))

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
            response = self._api.call(
                action, "POST", "comment/list", params={"expand": "properties"}, body={"ids": ids}
            )
            data = read_json(action, response)
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
            data = read_json(action, self._api.call(
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


def _issue(action: OutboundAction) -> str:
    """Return the issue's immutable id for URLs (keys change when issues move)."""
    return quote(action.target.id or action.target.key, safe="")


def _required(action: OutboundAction, value: str | None, field: str) -> str:
    """Return a field the action cannot do without, or stop it as permanent."""
    if not value:
        raise Stop(Result("permanent", f"{what(action)}: the action has no {field}"))
    return value


def _quoted(value: str) -> str:
    """Quote a value for JQL."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


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


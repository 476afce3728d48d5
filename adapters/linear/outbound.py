"""Outbound: act on Linear issues through the GraphQL API.

Every action reads the issue first and writes only what is missing, so a retry after a
crash between performing and recording changes nothing twice. A GraphQL `errors` list is
a failure even inside an HTTP 200; only Linear's RATELIMITED error is worth a retry.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from adapters.base import (
    Created,
    OutboundAction,
    Result,
    Stop,
    marker,
    retry_after,
    scrubbed,
)
from router.settings import Settings

TIMEOUT = 10.0  # seconds, on every call
RATE_LIMITED = "RATELIMITED"  # GraphQL `extensions.code` of Linear's rate-limit error
RESET_HEADER = "x-ratelimit-requests-reset"  # when the request budget refills (epoch)
_MESSAGE_LIMIT = 300  # characters of a vendor message kept in Result.detail

_ISSUE_STATE = """query IssueState($id: String!) {
  issue(id: $id) { id assignee { id } team { id key } labels(first: 100) { nodes { id name } } }
}"""
_SET_ASSIGNEE = """mutation SetAssignee($id: String!, $assigneeId: String) {
  issueUpdate(id: $id, input: {assigneeId: $assigneeId}) { success issue { id assignee { id } } }
}"""
_FIND_COMMENT = """query FindComment($id: String!, $commentId: ID!) {
  issue(id: $id) {
    comments(filter: {id: {eq: $commentId}}, includeArchived: true) { nodes { id } }
  }
}"""
_CREATE_COMMENT = """mutation CreateComment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id } }
}"""
_TEAM_LABEL = """query TeamLabel($teamId: String!, $name: String!) {
  team(id: $teamId) {
    labels(filter: {name: {eqIgnoreCase: $name}}, first: 1) { nodes { id name } }
  }
}"""
_CREATE_LABEL = """mutation CreateLabel($input: IssueLabelCreateInput!) {
  issueLabelCreate(input: $input) { success issueLabel { id name } }
}"""
_ADD_LABEL = """mutation AddLabel($id: String!, $labelId: String!) {
  issueUpdate(id: $id, input: {addedLabelIds: [$labelId]}) {
    success issue { id labels(first: 100) { nodes { id name } } }
  }
}"""


_TEAM_BY_KEY = """query TeamByKey($key: String!) {
  teams(filter: {key: {eq: $key}}, first: 1) { nodes { id key } }
}"""
_FIND_ISSUE = """query FindIssue($id: ID!) {
  issues(filter: {id: {eq: $id}}, includeArchived: true) { nodes { id identifier url } }
}"""
_CREATE_ISSUE = """mutation CreateIssue($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier url } }
}"""


class LinearOutbound:
    """Perform outbox actions on Linear issues (assign, unassign, comment, label).

    The httpx client is made on first use, so building the adapter touches no network;
    the performer's threads share it (httpx.Client is thread-safe).
    The API key goes verbatim into `Authorization`: a personal API key is sent bare, as
    Linear documents; an OAuth token would be configured as `Bearer <token>`.
    """

    def __init__(self, api_url: str, api_key: SecretStr | None,
                 transport: httpx.BaseTransport | None = None, timeout: float = TIMEOUT,
                 clock: Callable[[], float] = time.time) -> None:
        self._url = api_url
        self._key = api_key
        self._transport = transport
        self._timeout = timeout
        self._clock = clock  # reads the reset header's epoch time
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()  # the performer's threads make the client once

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types Linear performs here (the outbox routes only these)."""
        return frozenset(_STEPS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action once; report vendor trouble as a Result, never raise it."""
        step = _STEPS.get(action.type)
        if step is None:
            return Result("permanent", f"linear: {action.type} on {action.target.key} "
                                       "is not a Linear action")
        if self._key is None:
            return Result("permanent", "linear: FIRSTLINE_LINEAR_API_KEY is not set")
        try:
            return step(self, action)
        except Stop as stop:
            return scrubbed(stop.result, [self._key.get_secret_value()])

    # -- actions --------------------------------------------------------------------

    def _assign(self, action: OutboundAction) -> Result:
        """Make `action.account` the assignee (Linear has one), replacing the CTO but no one
        a person chose since the decision: firstline never overrides that (SPEC §4)."""
        account = _required(action.account, action, "an account")
        current = _assignee(self._issue(action))
        if current == account:
            return Result("ok", f"linear: {action.target.key} is already assigned to {account}")
        if current is not None and current not in action.remove:
            return Result("ok", f"linear: {action.target.key} left alone, {current} was "
                                "assigned since")
        return self._set_assignee(action, account)

    def _unassign(self, action: OutboundAction) -> Result:
        """Clear the assignee, but only while it is one of the accounts to remove."""
        current = _assignee(self._issue(action))
        if current is None or current not in action.remove:
            return Result("ok", f"linear: {action.target.key} is not assigned to "
                                "an account to remove")
        return self._set_assignee(action, None)

    def _comment(self, action: OutboundAction) -> Result:
        """Post the comment unless a previous attempt already did.

        The marker is the comment's own id, derived from the action (see `comment_id`):
        it is invisible to readers and cannot be edited away, unlike text in the body.
        A first try has nothing to look for.
        """
        body = _required(action.text, action, "comment text")
        comment = comment_id(action)
        if not action.first_try and self._comment_exists(action, comment):
            return Result("ok", f"linear: the comment on {action.target.key} already exists")
        data = self._call(action, _CREATE_COMMENT,
                          {"input": {"id": comment, "issueId": action.target.id, "body": body}})
        payload = _get(data, "commentCreate")
        if _get(payload, "success") is not True or _get(payload, "comment", "id") != comment:
            raise Stop(Result("retryable", f"linear: comment {action.target.key}: "
                                            "Linear did not confirm the comment"))
        return Result("ok", f"linear: commented on {action.target.key}")

    def _label(self, action: OutboundAction) -> Result:
        """Add the team's label (created if the team lacks it) unless the issue has it."""
        name = _required(action.label, action, "a label name")
        issue = self._issue(action)
        if any(_same_name(label, name) for label in _nodes(_get(issue, "labels"))):
            return Result("ok", f"linear: {action.target.key} already has label {name}")
        team = _get(issue, "team", "id")
        if not isinstance(team, str):
            raise Stop(Result("permanent", f"linear: label {action.target.key}: "
                                            "the issue has no team"))
        label = self._team_label(action, team, name) or self._create_label(action, team, name)
        data = self._call(action, _ADD_LABEL, {"id": action.target.id, "labelId": label})
        labels = _nodes(_get(data, "issueUpdate", "issue", "labels"))
        if _get(data, "issueUpdate", "success") is not True or not any(
                _get(node, "id") == label for node in labels):
            raise Stop(Result("retryable", f"linear: label {action.target.key}: "
                                            "Linear did not confirm the label"))
        return Result("ok", f"linear: labelled {action.target.key} {name}")

    def _file_review(self, action: OutboundAction) -> Result:
        """Create the review issue in the team `target.project` (its key), assigned to
        `account`, with the team's labels (created if missing), unless an earlier attempt
        did: the issue's id is derived from the action (`issue_id`), so a retry asks for
        exactly that issue."""
        title = _required(action.title, action, "a title")
        team_key = _required(action.target.project, action, "a team")
        issue = issue_id(action)
        found = None if action.first_try else self._found_issue(action, issue)
        if found is None:
            team = self._team(action, team_key)
            labels = [self._team_label(action, team, name)
                      or self._create_label(action, team, name) for name in action.labels]
            fields: dict[str, Any] = {"id": issue, "teamId": team, "title": title,
                                      "description": action.text or "", "labelIds": labels}
            if action.account:
                fields["assigneeId"] = action.account
            data = self._call(action, _CREATE_ISSUE, {"input": fields})
            found = _get(data, "issueCreate", "issue")
            if _get(data, "issueCreate", "success") is not True or _get(found, "id") != issue:
                raise Stop(Result("retryable", f"linear: file_review in {team_key}: Linear "
                                               "did not confirm the issue"))
        created = Created(str(_get(found, "identifier") or issue), _get(found, "url"))
        return Result("ok", f"linear: filed {created.key}", created=created)

    def _found_issue(self, action: OutboundAction, issue: str) -> dict[str, Any] | None:
        """Return the issue with this id (archived too) if it exists."""
        nodes = _nodes(_get(self._call(action, _FIND_ISSUE, {"id": issue}), "issues"))
        return nodes[0] if nodes else None

    def _team(self, action: OutboundAction, key: str) -> str:
        """Return the id of the team with this key."""
        nodes = _nodes(_get(self._call(action, _TEAM_BY_KEY, {"key": key}), "teams"))
        team = _get(nodes[0], "id") if nodes else None
        if not isinstance(team, str):
            raise Stop(Result("permanent", f"linear: file_review: no team with key {key!r}"))
        return team

    # -- steps ----------------------------------------------------------------------

    def _comment_exists(self, action: OutboundAction, comment: str) -> bool:
        """Tell whether the issue already has the comment with this id (archived too)."""
        found = self._call(action, _FIND_COMMENT, {"id": action.target.id, "commentId": comment})
        return bool(_nodes(_get(found, "issue", "comments")))

    def _issue(self, action: OutboundAction) -> dict[str, Any]:
        """Read the issue's assignee, team and labels."""
        issue = _get(self._call(action, _ISSUE_STATE, {"id": action.target.id}), "issue")
        if not isinstance(issue, dict):
            raise Stop(Result("permanent", f"linear: {action.type} {action.target.key}: "
                                            "the issue was not found"))
        return issue

    def _set_assignee(self, action: OutboundAction, account: str | None) -> Result:
        """Write the assignee and check that Linear reports it back."""
        data = self._call(action, _SET_ASSIGNEE, {"id": action.target.id, "assigneeId": account})
        payload = _get(data, "issueUpdate")
        if _get(payload, "success") is not True or _assignee(_get(payload, "issue")) != account:
            raise Stop(Result("retryable", f"linear: {action.type} {action.target.key}: "
                                            "Linear did not confirm the assignee"))
        done = f"assigned {action.target.key} to {account}" if account else \
            f"unassigned {action.target.key}"
        return Result("ok", f"linear: {done}")

    def _team_label(self, action: OutboundAction, team: str, name: str) -> str | None:
        """Return the id of the team's label with this name (any case), or None."""
        data = self._call(action, _TEAM_LABEL, {"teamId": team, "name": name})
        for node in _nodes(_get(data, "team", "labels")):
            if _same_name(node, name) and isinstance(node.get("id"), str):
                return str(node["id"])
        return None

    def _create_label(self, action: OutboundAction, team: str, name: str) -> str:
        """Create the team's label; if Linear refuses, another writer may have just made it."""
        try:
            data = self._call(action, _CREATE_LABEL, {"input": {"name": name, "teamId": team}})
        except Stop as stop:
            found = self._team_label(action, team, name) if stop.result.status == "permanent" \
                else None
            if found is None:
                raise
            return found
        label = _get(data, "issueLabelCreate", "issueLabel", "id")
        if _get(data, "issueLabelCreate", "success") is not True or not isinstance(label, str):
            raise Stop(Result("retryable", f"linear: label {action.target.key}: "
                                            f"Linear did not confirm creating label {name}"))
        return label

    def _call(self, action: OutboundAction, query: str, variables: dict[str, Any]) -> Any:
        """POST one GraphQL operation and return its `data`; raise _Stop on any failure."""
        what = f"linear: {action.type} {action.target.key}"
        try:
            response = self._http().post(self._url, json={"query": query, "variables": variables})
        except httpx.TimeoutException:
            raise Stop(Result("retryable",
                              f"{what}: no answer within {self._timeout:g} s")) from None
        except httpx.TransportError as exc:
            raise Stop(Result("retryable", f"{what}: could not reach Linear "
                                            f"({type(exc).__name__})")) from None
        return _data(response, what, self._clock())

    def _http(self) -> httpx.Client:
        """Return the HTTP client, made on first use with the key and a timeout."""
        assert self._key is not None  # perform() checked
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout, transport=self._transport,
                    headers={"Authorization": self._key.get_secret_value(),
                             "User-Agent": "firstline"},
                )
            return self._client


_STEPS: dict[str, Callable[[LinearOutbound, OutboundAction], Result]] = {
    "assign": LinearOutbound._assign,
    "unassign": LinearOutbound._unassign,
    "comment": LinearOutbound._comment,
    "label": LinearOutbound._label,
    "file_review": LinearOutbound._file_review,
}


def outbound(settings: Settings, transport: httpx.BaseTransport | None = None) -> LinearOutbound:
    """Build the Linear outbound adapter from settings; no client is made yet."""
    return LinearOutbound(settings.linear_api_url, settings.linear_api_key, transport)


def comment_id(action: OutboundAction) -> str:
    """Return the id a comment for this action gets, so a retry can look it up.

    Linear's `commentCreate` accepts a client-chosen id in UUID v4 format; this one is
    the action's marker and the issue id hashed into that format. Nothing about it shows
    in the comment, and HTML comments in Linear's markdown are not documented as hidden.
    """
    digest = hashlib.sha256(f"{marker(action.id)}:{action.target.id}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def issue_id(action: OutboundAction) -> str:
    """Return the id a review issue for this action gets, so a retry can look it up:
    `issueCreate` takes a client-chosen UUID v4 id, as `commentCreate` does."""
    digest = hashlib.sha256(f"{marker(action.id)}:{action.target.id}:issue".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def _data(response: httpx.Response, what: str, now: float) -> Any:
    """Return a GraphQL response's `data`, or raise _Stop classifying the failure."""
    body = _json_body(response)
    errors = body.get("errors") if isinstance(body, dict) else None
    status = response.status_code
    if _rate_limited(errors) or status == 429 or status >= 500:
        raise Stop(Result("retryable", f"{what}: {_reason(status, errors, response)}",
                           linear_retry_after(response.headers, now)))
    if status >= 300 or errors:
        raise Stop(Result("permanent", f"{what}: {_reason(status, errors, response)}"))
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise Stop(Result("retryable", f"{what}: Linear answered HTTP {status} without data"))
    return data


def _json_body(response: httpx.Response) -> Any:
    """Decode a JSON body, or None when there is none (a proxy's error page)."""
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return None


def _rate_limited(errors: Any) -> bool:
    """Tell whether a GraphQL error list holds Linear's RATELIMITED error."""
    return isinstance(errors, list) and any(
        _get(error, "extensions", "code") == RATE_LIMITED for error in errors)


def _reason(status: int, errors: Any, response: httpx.Response) -> str:
    """Describe a failure with the vendor's own message, shortened."""
    messages = [str(_get(e, "message")) for e in errors if _get(e, "message")] \
        if isinstance(errors, list) else []
    text = "; ".join(messages) or response.text.strip() or response.reason_phrase
    prefix = "GraphQL error" if status == 200 else f"HTTP {status}"
    return f"{prefix}: {text[:_MESSAGE_LIMIT]}"


def linear_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Return seconds to wait from `now`: `Retry-After`, else when Linear's request
    budget refills."""
    now = time.time() if now is None else now
    waited = retry_after(headers, now)
    if waited is not None:
        return waited
    reset = headers.get(RESET_HEADER)
    try:
        stamp = float(reset) if reset else None
    except ValueError:
        return None
    if stamp is None:
        return None
    seconds = stamp / 1000.0 if stamp > 1e11 else stamp  # epoch ms or s
    return max(0.0, seconds - now)


def _required(value: str | None, action: OutboundAction, what: str) -> str:
    """Return a field the action needs, or stop with a permanent failure naming it."""
    if not value:
        raise Stop(Result("permanent", f"linear: {action.type} {action.target.key}: "
                                        f"the action carries no {what}"))
    return value


def _assignee(issue: Any) -> str | None:
    """Return the issue's assignee id, or None when unassigned."""
    value = _get(issue, "assignee", "id")
    return value if isinstance(value, str) else None


def _same_name(label: Any, name: str) -> bool:
    """Tell whether a label node has this name, ignoring case as Linear's filter does."""
    value = _get(label, "name")
    return isinstance(value, str) and value.casefold() == name.casefold()


def _nodes(connection: Any) -> list[dict[str, Any]]:
    """Return a GraphQL connection's nodes, or [] when it is missing."""
    nodes = _get(connection, "nodes")
    return [node for node in nodes if isinstance(node, dict)] if isinstance(nodes, list) else []


def _get(obj: Any, *path: str) -> Any:
    """Walk nested dicts, returning None where a step is missing."""
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj

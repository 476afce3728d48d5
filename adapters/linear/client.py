"""Linear's GraphQL API: the operations the actions send, and one call's outcome.

A GraphQL `errors` list is a failure even inside an HTTP 200; only Linear's RATELIMITED
error is worth a retry. Every failure stops the action with a Result here, in one place,
so the actions in `outbound` read as the steps they take.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from adapters.base import OutboundAction, Result, Stop, retry_after

RATE_LIMITED = "RATELIMITED"  # GraphQL `extensions.code` of Linear's rate-limit error
RESET_HEADER = "x-ratelimit-requests-reset"  # when the request budget refills (epoch)
_MESSAGE_LIMIT = 300  # characters of a vendor message kept in Result.detail

ISSUE_STATE = """query IssueState($id: String!) {
  issue(id: $id) { id assignee { id } team { id key } labels(first: 100) { nodes { id name } } }
}"""
SET_ASSIGNEE = """mutation SetAssignee($id: String!, $assigneeId: String) {
  issueUpdate(id: $id, input: {assigneeId: $assigneeId}) { success issue { id assignee { id } } }
}"""
FIND_COMMENT = """query FindComment($id: String!, $commentId: ID!) {
  issue(id: $id) {
    comments(filter: {id: {eq: $commentId}}, includeArchived: true) { nodes { id } }
  }
}"""
CREATE_COMMENT = """mutation CreateComment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id } }
}"""
TEAM_LABEL = """query TeamLabel($teamId: String!, $name: String!) {
  team(id: $teamId) {
    labels(filter: {name: {eqIgnoreCase: $name}}, first: 1) { nodes { id name } }
  }
}"""
CREATE_LABEL = """mutation CreateLabel($input: IssueLabelCreateInput!) {
  issueLabelCreate(input: $input) { success issueLabel { id name } }
}"""
ADD_LABEL = """mutation AddLabel($id: String!, $labelId: String!) {
  issueUpdate(id: $id, input: {addedLabelIds: [$labelId]}) {
    success issue { id labels(first: 100) { nodes { id name } } }
  }
}"""


TEAM_BY_KEY = """query TeamByKey($key: String!) {
  teams(filter: {key: {eq: $key}}, first: 1) { nodes { id key } }
}"""
FIND_ISSUE = """query FindIssue($id: ID!) {
  issues(filter: {id: {eq: $id}}, includeArchived: true) { nodes { id identifier url } }
}"""
CREATE_ISSUE = """mutation CreateIssue($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { id identifier url } }
}"""


class LinearClient:
    """Send the actions' GraphQL operations to Linear.

    The httpx client is made on first use, so building the adapter touches no network;
    the performer's threads share it (httpx.Client is thread-safe).
    The API key goes verbatim into `Authorization`: a personal API key is sent bare, as
    Linear documents; an OAuth token would be configured as `Bearer <token>`.
    """

    def __init__(self, api_url: str, api_key: SecretStr | None,
                 transport: httpx.BaseTransport | None, timeout: float,
                 clock: Callable[[], float]) -> None:
        self._url = api_url
        self._key = api_key
        self._transport = transport
        self._timeout = timeout
        self._clock = clock  # reads the reset header's epoch time
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()  # the performer's threads make the client once

    def call(self, action: OutboundAction, query: str, variables: dict[str, Any]) -> Any:
        """POST one GraphQL operation and return its `data`; raise Stop on any failure."""
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
        assert self._key is not None  # LinearOutbound.perform() checked
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(
                    timeout=self._timeout, transport=self._transport,
                    headers={"Authorization": self._key.get_secret_value(),
                             "User-Agent": "firstline"},
                )
            return self._client


def _data(response: httpx.Response, what: str, now: float) -> Any:
    """Return a GraphQL response's `data`, or raise Stop classifying the failure."""
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
        get(error, "extensions", "code") == RATE_LIMITED for error in errors)


def _reason(status: int, errors: Any, response: httpx.Response) -> str:
    """Describe a failure with the vendor's own message, shortened."""
    messages = [str(get(e, "message")) for e in errors if get(e, "message")] \
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


def nodes(connection: Any) -> list[dict[str, Any]]:
    """Return a GraphQL connection's nodes, or [] when it is missing."""
    found = get(connection, "nodes")
    return [node for node in found if isinstance(node, dict)] if isinstance(found, list) else []


def get(obj: Any, *path: str) -> Any:
    """Walk nested dicts, returning None where a step is missing."""
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj

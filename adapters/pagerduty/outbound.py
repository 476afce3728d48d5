"""Outbound: pages through Events API v2, incident changes through REST API v2.

The `pagerduty` clients are told to try each request once: the outbox retrier owns
retries and honours Retry-After, which the clients would ignore (they retry 429 without
limit). They accept only https:// base URLs, so local stand-ins serve TLS.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

import httpx2
from pagerduty import Error as PagerDutyError
from pagerduty import EventsApiV2Client, RestApiV2Client, UrlError

from adapters.base import (
    OutboundAction,
    Result,
    Stop,
    marker,
    retry_after,
    retry_after_value,
    scrubbed,
)
from router.settings import Settings

TIMEOUT = 10  # seconds, on every call (the client types it as int)
PAGE_SOURCE = "firstline"
PAGE_SEVERITY = {"sev1": "critical", "sev2": "error", "sev3": "warning", "sev4": "info"}
RESET_HEADER = "ratelimit-reset"  # REST API: seconds until the rate limit resets
_SUMMARY_LIMIT = 1024  # Events API v2 truncates payload.summary here
_MESSAGE_LIMIT = 300  # characters of a vendor message kept in Result.detail
_T = TypeVar("_T")


class PagerDutyOutbound:
    """Perform PagerDuty actions: page and resolve_page (Events API v2, on the CTO's
    paging service), reassign_incident and note (REST API v2, with the `From` header).

    Clients are made on first use, so building the adapter touches no network; the
    performer's threads share them (their httpx2 clients are thread-safe).
    """

    def __init__(self, settings: Settings, transport: httpx2.BaseTransport | None = None,
                 timeout: int = TIMEOUT) -> None:
        self._settings = settings
        self._transport = transport
        self._timeout = timeout
        self._events_client: EventsApiV2Client | None = None
        self._rest_client: RestApiV2Client | None = None
        self._lock = threading.Lock()  # the performer's threads make each client once

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types PagerDuty performs here (the outbox routes only these)."""
        return frozenset(_STEPS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action once; report vendor trouble as a Result, never raise it."""
        step = _STEPS.get(action.type)
        if step is None:
            return Result("permanent", f"pagerduty: {action.type} on {action.target.key} "
                                       "is not a PagerDuty action")
        try:
            return step(self, action)
        except Stop as stop:
            return scrubbed(stop.result, self._secrets())

    # -- Events API v2 --------------------------------------------------------------

    def _page(self, action: OutboundAction) -> Result:
        """Trigger an alert; PagerDuty's dedup_key makes a repeated trigger one alert."""
        dedup = _required(action.dedup_key, action, "dedup_key")
        client = self._events()
        self._guard(action, lambda: client.trigger(
            (action.text or f"firstline: {action.target.key}")[:_SUMMARY_LIMIT], PAGE_SOURCE,
            dedup_key=dedup, severity=PAGE_SEVERITY.get(action.severity or "", "critical"),
            custom_details=_details(action), links=_links(action)))
        return Result("ok", f"pagerduty: paged for {action.target.key} ({dedup})")

    def _resolve_page(self, action: OutboundAction) -> Result:
        """Resolve the alert with this dedup_key; resolving twice changes nothing."""
        dedup = _required(action.dedup_key, action, "dedup_key")
        client = self._events()
        self._guard(action, lambda: client.resolve(dedup))
        return Result("ok", f"pagerduty: resolved the page for {action.target.key} ({dedup})")

    # -- REST API v2 ----------------------------------------------------------------

    def _reassign(self, action: OutboundAction) -> Result:
        """Assign the incident to the owner and take the CTO off, unless already so.

        Other assignees (not in `remove`) stay: only the CTO is taken off.
        """
        account = _required(action.account, action, "account")
        path = f"/incidents/{quote(action.target.id, safe='')}"
        current = _assignee_ids(_get(self._rest_call(action, "GET", path), "incident"))
        if account in current and not set(action.remove) & set(current):
            return Result("ok", f"pagerduty: {action.target.key} is already assigned to {account}")
        keep = [user for user in current if user not in action.remove and user != account]
        body = {"incident": {"type": "incident_reference", "assignments": [
            {"assignee": {"id": user, "type": "user_reference"}} for user in (account, *keep)]}}
        updated = self._rest_call(action, "PUT", path, body)
        if account not in _assignee_ids(_get(updated, "incident")):
            raise Stop(Result("retryable", f"pagerduty: reassign_incident {action.target.key}: "
                                            "PagerDuty did not confirm the assignment"))
        return Result("ok", f"pagerduty: reassigned {action.target.key} to {account}")

    def _note(self, action: OutboundAction) -> Result:
        """Add the note unless a previous attempt already did.

        PagerDuty notes have no hidden field, so the marker is a short visible trailer,
        `[firstline:action:<id>]`; the brackets keep action 1 from matching action 12.
        A first try has nothing to look for.
        """
        text = _required(action.text, action, "note text")
        tag = f"[{marker(action.id)}]"
        path = f"/incidents/{quote(action.target.id, safe='')}/notes"
        if not action.first_try and self._noted(action, path, tag):
            return Result("ok", f"pagerduty: the note on {action.target.key} already exists")
        self._rest_call(action, "POST", path, {"note": {"content": f"{text}\n\n{tag}"}})
        return Result("ok", f"pagerduty: added a note to {action.target.key}")

    def _noted(self, action: OutboundAction, path: str, tag: str) -> bool:
        """Tell whether a note on the incident carries this action's marker."""
        notes = _get(self._rest_call(action, "GET", path), "notes")
        return any(tag in str(_get(note, "content") or "") for note in _list(notes))

    def _rest_call(self, action: OutboundAction, method: str, path: str,
                   body: dict[str, Any] | None = None) -> Any:
        """Send one REST request and return its decoded body; raise _Stop on failure."""
        client = self._rest(action, write=method != "GET")
        extra = {} if body is None else {"json": body}
        response = self._guard(action, lambda: client.request(method, path, **extra))
        failure = _refusal(response, f"pagerduty: {action.type} {action.target.key}")
        if failure is not None:
            raise Stop(failure)
        try:
            return response.json()
        except ValueError:
            return None

    # -- clients --------------------------------------------------------------------

    def _events(self) -> EventsApiV2Client:
        """Return the Events API client, made on first use."""
        key = self._settings.pagerduty_routing_key
        if key is None:
            raise Stop(Result("permanent",
                               "pagerduty: FIRSTLINE_PAGERDUTY_ROUTING_KEY is not set"))
        with self._lock:
            if self._events_client is None:
                self._events_client = _once_only(_build(lambda: EventsApiV2Client(
                    key.get_secret_value(), base_url=self._settings.pagerduty_events_url,
                    transport=self._transport)), self._timeout)
            return self._events_client

    def _rest(self, action: OutboundAction, write: bool) -> RestApiV2Client:
        """Return the REST client, made on first use; writes need the `From` address."""
        if write and not self._settings.pagerduty_from:
            raise Stop(Result("permanent", f"pagerduty: {action.type} {action.target.key}: "
                                            "FIRSTLINE_PAGERDUTY_FROM is not set"))
        token = self._settings.pagerduty_api_token
        if token is None:
            raise Stop(Result("permanent",
                               "pagerduty: FIRSTLINE_PAGERDUTY_API_TOKEN is not set"))
        with self._lock:
            if self._rest_client is None:
                self._rest_client = _once_only(_build(lambda: RestApiV2Client(
                    token.get_secret_value(), default_from=self._settings.pagerduty_from,
                    base_url=self._settings.pagerduty_api_url, transport=self._transport)),
                    self._timeout)
            return self._rest_client

    def _guard(self, action: OutboundAction, call: Callable[[], _T]) -> _T:
        """Run one client call, turning the client's exceptions into _Stop."""
        try:
            return call()
        except PagerDutyError as exc:
            raise Stop(_failure(exc, f"pagerduty: {action.type} {action.target.key}",
                                self._timeout)) from None

    def _secrets(self) -> list[str]:
        """Return the secrets a detail must never show."""
        values = (self._settings.pagerduty_routing_key, self._settings.pagerduty_api_token)
        return [value.get_secret_value() for value in values if value is not None]


_STEPS: dict[str, Callable[[PagerDutyOutbound, OutboundAction], Result]] = {
    "page": PagerDutyOutbound._page,
    "resolve_page": PagerDutyOutbound._resolve_page,
    "reassign_incident": PagerDutyOutbound._reassign,
    "note": PagerDutyOutbound._note,
}


def outbound(settings: Settings,
             transport: httpx2.BaseTransport | None = None) -> PagerDutyOutbound:
    """Build the PagerDuty outbound adapter from settings; no client is made yet."""
    return PagerDutyOutbound(settings, transport)


def _build(make: Callable[[], _T]) -> _T:
    """Make a client; a base URL the client refuses (not https://) is permanent."""
    try:
        return make()
    except UrlError as exc:
        raise Stop(Result("permanent", f"pagerduty: {exc}")) from None


_Client = TypeVar("_Client", EventsApiV2Client, RestApiV2Client)


def _once_only(client: _Client, timeout: int) -> _Client:
    """Make the client try each request once, within `timeout` seconds.

    By default it retries 429 without limit (ignoring Retry-After), 5xx a few times and
    network errors three times. With `max_network_attempts = 0` a network error raises
    at once; a `retry` entry takes 429 off the retry-forever path and the negative
    `max_http_attempts` (the check is `attempts > max_http_attempts`) returns every
    listed status at once. 5xx, no longer listed, return at once as well.
    """
    client.timeout = timeout
    client.max_network_attempts = 0
    client.retry = {429: 1}
    client.max_http_attempts = -1
    return client


def _failure(exc: PagerDutyError, what: str, timeout: int) -> Result:
    """Classify a client exception: network trouble, or a refusal with a response."""
    response = exc.response
    if response is None:
        cause = exc.__cause__
        if isinstance(cause, httpx2.TimeoutException):
            return Result("retryable", f"{what}: no answer within {timeout} s")
        return Result("retryable", f"{what}: could not reach PagerDuty "
                                   f"({type(cause or exc).__name__})")
    refusal = _refusal(response, what)
    if refusal is not None:
        return refusal
    return Result("retryable", f"{what}: unexpected answer (HTTP {response.status_code})")


def _refusal(response: httpx2.Response, what: str) -> Result | None:
    """Classify a non-2xx status (429 and 5xx retryable); None for success."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    reason = f"{what}: HTTP {status}: {_vendor_message(response)}"
    if status == 429 or status >= 500:
        return Result("retryable", reason, _wait(response.headers))
    return Result("permanent", reason)


def _wait(headers: Mapping[str, str]) -> float | None:
    """Return the seconds PagerDuty asks to wait: Retry-After, else `ratelimit-reset`,
    which its REST API sends with a 429 (seconds until the rate limit resets)."""
    waited = retry_after(headers)
    if waited is not None:
        return waited
    return retry_after_value(headers.get(RESET_HEADER))


def _vendor_message(response: httpx2.Response) -> str:
    """Return PagerDuty's own explanation (REST `error`, Events `message`/`errors`)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = _get(body, "error")
    if isinstance(error, dict):
        body = error
    parts = [str(_get(body, "message") or "")] + [str(e) for e in _list(_get(body, "errors"))]
    text = "; ".join(p for p in parts if p) or response.text.strip() or response.reason_phrase
    return text[:_MESSAGE_LIMIT]


def _details(action: OutboundAction) -> dict[str, str]:
    """Say which item the page is about, for whoever opens it in PagerDuty."""
    details = {"item": action.target.key, "source": action.target.source}
    if action.target.url:
        details["url"] = action.target.url
    return details


def _links(action: OutboundAction) -> list[dict[str, str]]:
    """Link the decision (why the CTO was paged) and the item itself."""
    links = []
    if action.link:
        links.append({"href": action.link, "text": "firstline decision"})
    if action.target.url:
        links.append({"href": action.target.url, "text": action.target.key})
    return links


def _assignee_ids(incident: Any) -> list[str]:
    """Return the ids of an incident's assigned users, in PagerDuty's order."""
    ids = (_get(item, "assignee", "id") for item in _list(_get(incident, "assignments")))
    return [value for value in ids if isinstance(value, str)]


def _required(value: str | None, action: OutboundAction, what: str) -> str:
    """Return a field the action needs, or stop with a permanent failure naming it."""
    if not value:
        raise Stop(Result("permanent", f"pagerduty: {action.type} {action.target.key}: "
                                        f"the action carries no {what}"))
    return value


def _list(value: Any) -> list[Any]:
    """Return the value if it is a list, else []."""
    return value if isinstance(value, list) else []


def _get(obj: Any, *path: str) -> Any:
    """Walk nested dicts, returning None where a step is missing."""
    for step in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(step)
    return obj

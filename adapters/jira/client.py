"""Jira Cloud REST API v2: send one request for an action and classify Jira's answer.

Requests go through the `jira` package's session (auth, TLS settings and
timeouts in one place). The client is built on first use with get_server_info=False, so
nothing touches the network at start-up, and with max_retries=0: its session would
otherwise retry 429/503 itself and sleep, hiding Retry-After from firstline's retrier.
Requests go to the session directly because `assign_issue` picks its user by a fuzzy
search (pycontribs/jira#1284) and `add_comment` cannot attach a comment property.

Every failure stops the action with a Result (retryable or permanent, with Jira's wait)
here, in one place, so the actions in `outbound` read as the steps they take.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import requests
from jira import JIRA, JIRAError
from jira.resilientsession import parse_error_msg

from adapters.base import OutboundAction, Result, Stop, retry_after_value, scrubbed
from router.settings import Settings

_API = "/rest/api/2"
_RETRYABLE = frozenset({408, 429})


class JiraClient:
    """Send an action's requests to one Jira site over a session made on first use."""

    def __init__(self, settings: Settings, timeout: float, clock: Callable[[], float]) -> None:
        self.server = settings.jira_url.rstrip("/")
        self._email = settings.jira_email
        self._token = settings.jira_api_token
        self._timeout = timeout
        self._clock = clock
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    def call(
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
        url = f"{self.server}{_API}/{path}"
        data = json.dumps(body) if body is not None else None
        where = f"{method} {_API}/{path}"
        try:
            response = session.request(
                method, url, params=params, data=data, allow_redirects=method == "GET"
            )
        except JIRAError as exc:
            raise Stop(self._refusal(action, where, exc)) from None
        except requests.exceptions.Timeout:
            detail = f"{what(action)}: Jira did not answer {where} within {self._timeout:g}s"
            raise Stop(Result("retryable", detail)) from None
        except requests.exceptions.ConnectionError as exc:
            detail = f"{what(action)}: could not reach Jira for {where}: {type(exc).__name__}"
            raise Stop(Result("retryable", detail)) from None
        except requests.exceptions.RequestException as exc:
            detail = f"{what(action)}: {where} failed: {type(exc).__name__}"
            raise Stop(Result("permanent", detail)) from None
        if response.is_redirect:
            moved = response.headers.get("Location", "somewhere else")
            detail = f"{what(action)}: Jira redirected {where} to {moved}"
            raise Stop(Result("permanent", detail))
        return response

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        if self._session is not None:
            self._session.close()

    def scrubbed(self, result: Result) -> Result:
        """Make sure the API token never leaves in a detail, whatever Jira echoed."""
        return scrubbed(result, [self._token.get_secret_value() if self._token else ""])

    def _client(self, action: OutboundAction) -> requests.Session:
        """Build the `jira` client's session on first use; refuse when unconfigured."""
        if self._email is None or self._token is None:
            raise Stop(Result(
                "permanent",
                f"{what(action)}: FIRSTLINE_JIRA_EMAIL and FIRSTLINE_JIRA_API_TOKEN are not set",
            ))
        with self._lock:
            if self._session is None:
                client = JIRA(
                    server=self.server,
                    basic_auth=(self._email, self._token.get_secret_value()),
                    get_server_info=False,
                    max_retries=0,
                    timeout=self._timeout,
                )
                self._session = client._session
            return self._session

    def _refusal(self, action: OutboundAction, where: str, exc: JIRAError) -> Result:
        """Classify an HTTP refusal: 408, 429 and 5xx are retryable, other 4xx permanent.

        Built from the status and Jira's error messages only: `str(JIRAError)` carries
        request headers and bodies.
        """
        status, response = exc.status_code, exc.response
        message = parse_error_msg(response) if response is not None else ""
        detail = f"{what(action)}: Jira answered {status} to {where}"
        detail = f"{detail}: {message}" if message else detail
        if status is None or status in _RETRYABLE or status >= 500:
            headers = response.headers if response is not None else {}
            wait = retry_after_value(headers.get("Retry-After"), self._clock())
            if wait is None and status == 429:
                wait = _reset_in(headers.get("X-RateLimit-Reset"), self._clock())
            return Result("retryable", detail, retry_after=wait)
        return Result("permanent", detail)


def what(action: OutboundAction) -> str:
    """Name the action and the issue it is about, for Result details."""
    return f"{action.type} {action.target.key}"


def read_json(action: OutboundAction, response: requests.Response) -> Any:
    """Decode a JSON answer; anything else means this is not the Jira API answering."""
    try:
        return response.json()
    except ValueError:
        detail = f"{what(action)}: Jira answered {response.status_code} without JSON"
        raise Stop(Result("permanent", detail)) from None


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

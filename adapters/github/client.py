"""GitHub's REST API as the actions call it: one request, and a refusal as a Result.

X-GitHub-Api-Version 2022-11-28 with httpx. Kept apart from the actions because sending
a request (transport, redirects, where the token may go) and classifying GitHub's
refusals (rate limits, retryable or permanent) are the same for every action. The
transport is built on first use.
"""

from __future__ import annotations

import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from adapters import stdlib_http
from adapters.base import OutboundAction, Result, Stop, retry_after_value, scrubbed
from router.settings import Settings

TIMEOUT = 10.0  # seconds, on every call
USER_AGENT = "firstline"
_MAX_REDIRECTS = 5
API_VERSION = "2022-11-28"
_SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute" when it names no time
_RETRYABLE = frozenset({408, 429})


class GitHubClient:
    """Send an action's requests to GitHub; any failure stops the action with its Result."""

    def __init__(
        self, settings: Settings, timeout: float = TIMEOUT, clock: Callable[[], float] = time.time
    ) -> None:
        self._base = settings.github_api_url.rstrip("/")
        self._token = settings.github_token
        self._timeout = timeout
        self._clock = clock
        self._http: httpx.HTTPTransport | None = None
        self._timeouts = httpx.Timeout(timeout).as_dict()
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._http is not None:
            self._http.close()

    def _transport(self, action: OutboundAction) -> httpx.HTTPTransport:
        """Build the transport on first use; refuse when no token is configured.

        Calls go to httpx's transport, not through a `Client`: a token API needs none of
        its cookie jar, auth flow or URL merging, and those were half of each call's CPU
        (about 600 against 320 microseconds; four calls per reassignment). Its pool is
        adapters.stdlib_http's, cheaper again, unless a proxy is configured. What `Client`
        takes from the environment is kept: SSL_CERT_FILE/SSL_CERT_DIR (`trust_env`) and
        the *_PROXY/NO_PROXY variables.
        """
        if self._token is None:
            raise Stop(Result("permanent", f"{what(action)}: FIRSTLINE_GITHUB_TOKEN is not set"))
        with self._lock:
            if self._http is None:
                proxy = _env_proxy(self._base)
                self._http = (httpx.HTTPTransport(trust_env=True, proxy=proxy) if proxy
                              else stdlib_http.transport())
            return self._http

    def _call(
        self, action: OutboundAction, method: str, url: str, body: Any = None
    ) -> httpx.Response:
        """Send one request; a refusal or transport failure stops the action with a Result.

        Only reads follow redirects (a renamed repository): a redirected POST could turn
        into a GET and look like success. The token goes only where the request started:
        once a redirect leaves that origin (scheme, host or port), no later hop carries
        it, as browsers and `httpx.Client` do.
        """
        transport = self._transport(action)
        target = httpx.URL(url if "://" in url else f"{self._base}{url}")
        where = f"{method} {target.path}"
        content = orjson.dumps(body) if body is not None else None
        credentials = True
        try:
            for _ in range(_MAX_REDIRECTS + 1):
                response = transport.handle_request(httpx.Request(
                    method, target, content=content, headers=self._headers(content, credentials),
                    extensions={"timeout": self._timeouts}))
                try:
                    response.read()
                finally:
                    response.close()
                if method != "GET" or not response.has_redirect_location:
                    break
                moved = target.join(response.headers["location"])
                credentials = credentials and _same_origin(moved, target)
                target = moved
        except httpx.TimeoutException:
            detail = f"{what(action)}: GitHub did not answer {where} within {self._timeout:g}s"
            raise Stop(Result("retryable", detail)) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            detail = f"{what(action)}: cannot send {where}: {exc}"
            raise Stop(Result("permanent", detail)) from None
        except httpx.TransportError as exc:
            detail = f"{what(action)}: could not reach GitHub for {where}: {type(exc).__name__}"
            raise Stop(Result("retryable", detail)) from None
        if response.is_success:
            return response
        raise Stop(self._refusal(action, where, response))

    def _headers(self, content: bytes | None, credentials: bool = True) -> dict[str, str]:
        assert self._token is not None
        headers = {
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": API_VERSION,
            "User-Agent": USER_AGENT,  # GitHub refuses requests without one
        }
        if credentials:
            headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        if content is not None:
            headers["Content-Type"] = "application/json"
        return headers

    def _refusal(self, action: OutboundAction, where: str, response: httpx.Response) -> Result:
        """Classify a refusal: rate limits, 408, 429 and 5xx retryable, other 4xx permanent.

        GitHub's documented rate-limit answers are 403 or 429: `x-ratelimit-remaining: 0`
        means wait until `x-ratelimit-reset`; a secondary limit names Retry-After or, when
        it names nothing, asks for at least a minute.
        """
        status, headers = response.status_code, response.headers
        message = _error_message(response)
        detail = f"{what(action)}: GitHub answered {status} to {where}"
        detail = f"{detail}: {message}" if message else detail
        now = self._clock()
        wait = retry_after_value(headers.get("retry-after"), now)
        if status in (403, 429) and headers.get("x-ratelimit-remaining") == "0":
            reset = _reset_in(headers.get("x-ratelimit-reset"), now)
            waits = [w for w in (wait, reset) if w is not None]
            return Result("retryable", detail, retry_after=max(waits) if waits else None)
        if status in _RETRYABLE or status >= 500:
            return Result("retryable", detail, retry_after=wait)
        if status == 403 and (wait is not None or "secondary rate limit" in message.lower()):
            return Result("retryable", detail, retry_after=wait or _SECONDARY_WAIT)
        if 300 <= status < 400:
            detail = f"{detail} (moved to {headers.get('location', 'an unknown place')})"
        return Result("permanent", detail)

    def _json(self, action: OutboundAction, response: httpx.Response) -> Any:
        """Decode a JSON answer; anything else means this is not GitHub's API answering."""
        try:
            return response.json()
        except ValueError:
            detail = f"{what(action)}: GitHub answered {response.status_code} without JSON"
            raise Stop(Result("permanent", detail)) from None

    def _object(self, action: OutboundAction, response: httpx.Response) -> dict[str, Any]:
        """Decode a JSON object (an issue); any other shape is not what GitHub documents."""
        data = self._json(action, response)
        if not isinstance(data, dict):
            detail = f"{what(action)}: GitHub answered {response.status_code} without an object"
            raise Stop(Result("permanent", detail))
        return data

    def _scrubbed(self, result: Result) -> Result:
        """Make sure the token never leaves in a detail, whatever GitHub echoed."""
        return scrubbed(result, [self._token.get_secret_value() if self._token else ""])


def what(action: OutboundAction) -> str:
    """Name the action and the item it is about, for Result details."""
    return f"{action.type} {action.target.key}"


def _error_message(response: httpx.Response) -> str:
    """Return GitHub's `message` and any validation `errors`, for a person to read."""
    try:
        data = response.json()
    except ValueError:
        return response.reason_phrase
    if not isinstance(data, dict):
        return response.reason_phrase
    parts = [str(data.get("message") or response.reason_phrase)]
    for error in data.get("errors") or ():
        if isinstance(error, dict):
            parts.append(str(error.get("message") or
                             f"{error.get('field', '?')} {error.get('code', 'invalid')}"))
        else:
            parts.append(str(error))
    return "; ".join(parts)


def _same_origin(one: httpx.URL, other: httpx.URL) -> bool:
    """Tell whether two URLs share scheme, host and port (a default port counts as given)."""
    defaults = {"http": 80, "https": 443}
    return (one.scheme, one.host, one.port or defaults.get(one.scheme)) == (
        other.scheme, other.host, other.port or defaults.get(other.scheme))


def _env_proxy(base: str) -> str | None:
    """The proxy the environment names for `base` (HTTPS_PROXY, ALL_PROXY, NO_PROXY), as
    httpx.Client(trust_env=True) would use it."""
    url = httpx.URL(base)
    if urllib.request.proxy_bypass(url.host):
        return None
    proxies = urllib.request.getproxies()
    return proxies.get(url.scheme) or proxies.get("all")


def _reset_in(value: str | None, now: float) -> float | None:
    """Read `x-ratelimit-reset` (UTC epoch seconds) as seconds from now."""
    try:
        return max(0.0, float(value) - now) if value else None
    except ValueError:
        return None

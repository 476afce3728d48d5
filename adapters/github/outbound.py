"""Outbound: act in github.

GitHub REST API (X-GitHub-Api-Version 2022-11-28) with httpx. Pull requests use the
issue endpoints for assignees, labels and comments, addressed by the item's key
(`owner/repo#number`), never by its id. The client is built on first use.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import httpx
import orjson

from adapters import stdlib_http
from adapters.base import (
    Created,
    OutboundAction,
    Result,
    Stop,
    marker,
    retry_after_value,
    scrubbed,
)
from adapters.github.inbound import _login
from router.settings import Settings

TIMEOUT = 10.0  # seconds, on every call
USER_AGENT = "firstline"
_MAX_REDIRECTS = 5
API_VERSION = "2022-11-28"
_KEY = re.compile(r"(?P<owner>[^/\s#]+)/(?P<repo>[^/\s#]+)#(?P<number>\d+)")
_REPO = re.compile(r"[^/\s#]+/[^/\s#]+")
_REVIEW_PAGES = 10  # 1,000 newest issues: where a retry looks for an earlier review
_MAX_COMMENT_PAGES = 100  # 10,000 comments: past that the marker is not looked for
_SECONDARY_WAIT = 60.0  # GitHub: "wait for at least one minute" when it names no time
_RETRYABLE = frozenset({408, 429})


class GitHubOutbound:
    """Assign, unassign, comment on and label GitHub issues and pull requests.

    Reads come before writes (assignees, comment markers), and writes are checked
    against GitHub's answer: it drops assignees it cannot assign without saying so.
    """

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

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types GitHub performs here (the outbox routes only these)."""
        return frozenset(_HANDLERS)

    def perform(self, action: OutboundAction) -> Result:
        """Perform one action; vendor trouble becomes a Result, never an exception."""
        handler = _HANDLERS.get(action.type)
        if handler is None:
            return Result("permanent", f"{_what(action)}: not a GitHub action")
        try:
            path = _repo_path(action) if action.type == "file_review" else _issue_path(action)
            result = handler(self, action, path)
        except Stop as stop:
            result = stop.result
        return self._scrubbed(result)

    def close(self) -> None:
        """Close the HTTP client, if one was opened."""
        if self._http is not None:
            self._http.close()

    # -- actions ------------------------------------------------------------------

    def _assign(self, action: OutboundAction, path: str) -> Result:
        """Add `account` as an assignee after taking the CTO (`remove`) off."""
        login = _required(action, action.account, "account")
        assigned = _logins(self._object(action, self._call(action, "GET", path)).get("assignees"))
        stale = [r for r in action.remove if _has(assigned, r) and r.lower() != login.lower()]
        if _has(assigned, login) and not stale:
            return Result("ok", f"{_what(action)}: {login} is already assigned")
        if stale:
            self._remove(action, path, stale)
        if _has(assigned, login):
            return Result("ok", f"{_what(action)}: removed {', '.join(stale)}")
        body = {"assignees": [login]}
        answer = self._object(action, self._call(action, "POST", f"{path}/assignees", body))
        if not _has(_logins(answer.get("assignees")), login):
            return Result("permanent", f"{_what(action)}: GitHub did not assign {login}: it "
                          "drops assignees without push access to the repository")
        return Result("ok", f"{_what(action)}: assigned {login}")

    def _unassign(self, action: OutboundAction, path: str) -> Result:
        """Take `remove` off the assignees (removing someone not assigned is harmless)."""
        if not action.remove:
            return Result("ok", f"{_what(action)}: nobody to remove")
        self._remove(action, path, list(action.remove))
        return Result("ok", f"{_what(action)}: removed {', '.join(action.remove)}")

    def _comment(self, action: OutboundAction, path: str) -> Result:
        """Post the comment with its marker unless an earlier attempt already did (a
        first try has nothing to look for)."""
        text = _required(action, action.text, "text")
        tag = comment_marker(action.id)
        if not action.first_try and self._commented(action, path, tag):
            return Result("ok", f"{_what(action)}: already commented")
        self._call(action, "POST", f"{path}/comments", {"body": f"{text}\n\n{tag}"})
        return Result("ok", f"{_what(action)}: commented")

    def _label(self, action: OutboundAction, path: str) -> Result:
        """Add the label; GitHub keeps labels a set, so a repeat changes nothing."""
        label = _required(action, action.label, "label")
        body = {"labels": [label]}
        answer = self._json(action, self._call(action, "POST", f"{path}/labels", body))
        labels = answer if isinstance(answer, list) else []
        names = [str(x.get("name")) for x in labels if isinstance(x, dict)]
        if not _has(names, label):
            return Result("permanent", f"{_what(action)}: GitHub did not add label {label}")
        return Result("ok", f"{_what(action)}: labelled {label}")

    def _file_review(self, action: OutboundAction, path: str) -> Result:
        """Open the review issue, assigned to `account`, unless an earlier attempt did: its
        body carries the action's marker, looked for among the repository's newest issues
        (with the review's labels). GitHub drops an assignee it may not assign without
        saying so: that is a failure, naming the issue that was made."""
        title = _required(action, action.title, "title")
        tag = comment_marker(action.id)
        found = None if action.first_try else self._find_review(action, path, tag)
        if found is None:
            body: dict[str, Any] = {"title": title, "body": f"{action.text or ''}\n\n{tag}",
                                    "labels": list(action.labels)}
            if action.account:
                body["assignees"] = [action.account]
            found = self._object(action, self._call(action, "POST", f"{path}/issues", body))
        number = found.get("number")
        created = Created(f"{path.removeprefix('/repos/')}#{number}",
                          str(found.get("html_url") or "") or None)
        if action.account and not _has(_logins(found.get("assignees")), action.account):
            return Result("permanent", f"{_what(action)}: opened {created.key}, but GitHub did "
                          f"not assign {action.account}: it drops assignees without push "
                          "access to the repository", created=created)
        return Result("ok", f"{_what(action)}: filed {created.key}", created=created)

    def _find_review(self, action: OutboundAction, path: str, tag: str) -> dict[str, Any] | None:
        """Return the issue whose body carries `tag`, among the newest issues, or None."""
        query = "state=all&sort=created&direction=desc&per_page=100"
        if action.labels:
            query += "&labels=" + ",".join(action.labels)
        url: str | None = f"{path}/issues?{query}"
        for _ in range(_REVIEW_PAGES):
            if url is None:
                return None
            response = self._call(action, "GET", url)
            page = self._json(action, response)
            for issue in page if isinstance(page, list) else ():
                body = issue.get("body") if isinstance(issue, dict) else None
                if isinstance(body, str) and tag in body:
                    found: dict[str, Any] = issue
                    return found
            url = response.links.get("next", {}).get("url")
        return None

    # -- helpers ------------------------------------------------------------------

    def _remove(self, action: OutboundAction, path: str, logins: list[str]) -> None:
        """Remove assignees and check they are gone (GitHub ignores what it may not do)."""
        answer = self._object(action, self._call(
            action, "DELETE", f"{path}/assignees", {"assignees": logins}
        ))
        left = [x for x in logins if _has(_logins(answer.get("assignees")), x)]
        if left:
            raise Stop(Result("permanent", f"{_what(action)}: GitHub did not remove "
                               f"{', '.join(left)}: it needs push access to the repository"))

    def _commented(self, action: OutboundAction, path: str, tag: str) -> bool:
        """Look for the marker in every comment, following the `Link: rel="next"` pages."""
        url: str | None = f"{path}/comments?per_page=100"
        for _ in range(_MAX_COMMENT_PAGES):
            if url is None:
                return False
            response = self._call(action, "GET", url)
            page = self._json(action, response)
            for comment in page if isinstance(page, list) else ():
                body = comment.get("body") if isinstance(comment, dict) else None
                if isinstance(body, str) and tag in body:
                    return True
            url = response.links.get("next", {}).get("url")
        raise Stop(Result("permanent", f"{_what(action)}: too many comments to check for "
                           "an earlier attempt's marker"))

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
            raise Stop(Result("permanent", f"{_what(action)}: FIRSTLINE_GITHUB_TOKEN is not set"))
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
            detail = f"{_what(action)}: GitHub did not answer {where} within {self._timeout:g}s"
            raise Stop(Result("retryable", detail)) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL, httpx.LocalProtocolError) as exc:
            detail = f"{_what(action)}: cannot send {where}: {exc}"
            raise Stop(Result("permanent", detail)) from None
        except httpx.TransportError as exc:
            detail = f"{_what(action)}: could not reach GitHub for {where}: {type(exc).__name__}"
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
        detail = f"{_what(action)}: GitHub answered {status} to {where}"
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
            detail = f"{_what(action)}: GitHub answered {response.status_code} without JSON"
            raise Stop(Result("permanent", detail)) from None

    def _object(self, action: OutboundAction, response: httpx.Response) -> dict[str, Any]:
        """Decode a JSON object (an issue); any other shape is not what GitHub documents."""
        data = self._json(action, response)
        if not isinstance(data, dict):
            detail = f"{_what(action)}: GitHub answered {response.status_code} without an object"
            raise Stop(Result("permanent", detail))
        return data

    def _scrubbed(self, result: Result) -> Result:
        """Make sure the token never leaves in a detail, whatever GitHub echoed."""
        return scrubbed(result, [self._token.get_secret_value() if self._token else ""])


_Handler = Callable[[GitHubOutbound, OutboundAction, str], Result]
_HANDLERS: dict[str, _Handler] = {
    "assign": GitHubOutbound._assign,
    "unassign": GitHubOutbound._unassign,
    "comment": GitHubOutbound._comment,
    "label": GitHubOutbound._label,
    "file_review": GitHubOutbound._file_review,
}


def outbound(settings: Settings, timeout: float = TIMEOUT) -> GitHubOutbound:
    """Return the GitHub outbound adapter; it opens no connection until its first action."""
    return GitHubOutbound(settings, timeout=timeout)


def comment_marker(action_id: int) -> str:
    """Return the HTML comment that marks a comment as this action's (hidden when rendered)."""
    return f"<!-- {marker(action_id)} -->"


def _what(action: OutboundAction) -> str:
    """Name the action and the item it is about, for Result details."""
    return f"{action.type} {action.target.key}"


def _issue_path(action: OutboundAction) -> str:
    """Turn `owner/repo#12` into `/repos/owner/repo/issues/12`, or stop as permanent."""
    found = _KEY.fullmatch(action.target.key)
    if found is None:
        detail = f"{_what(action)}: not a GitHub item key (owner/repo#number)"
        raise Stop(Result("permanent", detail))
    return f"/repos/{found['owner']}/{found['repo']}/issues/{found['number']}"


def _repo_path(action: OutboundAction) -> str:
    """Turn the review's `owner/repo` (target.project) into `/repos/owner/repo`."""
    repo = action.target.project or ""
    if not _REPO.fullmatch(repo):
        detail = f"{_what(action)}: {repo!r} is not a GitHub repository (owner/repo)"
        raise Stop(Result("permanent", detail))
    return f"/repos/{repo}"


def _required(action: OutboundAction, value: str | None, field: str) -> str:
    """Return a field the action cannot do without, or stop it as permanent."""
    if not value:
        raise Stop(Result("permanent", f"{_what(action)}: the action has no {field}"))
    return value


def _logins(users: Any) -> list[str]:
    """Read the logins of a list of user objects."""
    return [x for x in (_login(u) for u in users) if x] if isinstance(users, list) else []


def _has(logins: list[str], login: str) -> bool:
    """Tell whether a login is among others; GitHub logins ignore case."""
    return login.lower() in (x.lower() for x in logins)


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

"""GitHub's webhook delivery log: list a hook's recent deliveries and ask for one again.

GitHub never retries a failed delivery; its REST API lists each hook's deliveries (kept
three days) and redelivers one on request:

    GET  /repos/{owner}/{repo}/hooks/{id}/deliveries?per_page=100[&cursor=…]   (or /orgs/{org}/…)
    POST /repos/{owner}/{repo}/hooks/{id}/deliveries/{delivery_id}/attempts

`guid` is the delivery's `X-GitHub-Delivery`, the same on every attempt; `redelivery`
marks an attempt that was asked for. Pages follow the `Link: rel="next"` cursor, but
only its `cursor` is taken: every request goes to FIRSTLINE_GITHUB_API_URL, wherever a
link points. The token needs admin access to the hooks (fine-grained: the repository's
or organization's "Webhooks" permission, write; classic: `repo` or `admin:repo_hook`,
and `admin:org_hook` for organization hooks).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import httpx

from adapters.base import parse_time, retry_after_value
from router.settings import Settings

TIMEOUT = 10.0
PER_PAGE = 100
_SECONDARY_WAIT = 60.0  # GitHub: wait at least a minute when a limit names no time


@dataclass(frozen=True, slots=True)
class Hook:
    """One webhook whose deliveries firstline watches: `name` as configured, `path` its API."""

    name: str
    path: str


def hooks(settings: Settings) -> list[Hook]:
    """Return the hooks FIRSTLINE_GITHUB_HOOK_IDS names (Settings checked their form)."""
    return [Hook(name, path) for name, path in settings.github_hooks()]


@dataclass(frozen=True, slots=True)
class HookDelivery:
    """One attempt GitHub made to deliver an event to a hook."""

    id: int
    guid: str
    delivered_at: datetime
    status_code: int  # 0 when GitHub got no answer (timeout, refused connection)
    redelivery: bool

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300


class LogUnavailable(Exception):
    """The delivery log cannot be read or written now; `wait` seconds before trying again
    when GitHub said how long (rate limits), else None."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class DeliveryLog:
    """Read and act on GitHub's delivery log through its REST API."""

    def __init__(self, settings: Settings, transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        token = settings.github_token.get_secret_value() if settings.github_token else ""
        self._token = token
        self._clock = clock
        self._http = httpx.Client(
            base_url=settings.github_api_url.rstrip("/"), transport=transport,
            timeout=TIMEOUT, follow_redirects=False, headers={
                "Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "firstline"})

    def recent(self, hook: Hook, since: datetime, max_pages: int) -> Iterator[HookDelivery]:
        """Yield the hook's deliveries newest first, until one is older than `since`."""
        cursor: str | None = None
        for _ in range(max_pages):
            params = {"per_page": str(PER_PAGE), **({"cursor": cursor} if cursor else {})}
            response = self._call("GET", f"{hook.path}/deliveries", hook, params)
            page = response.json() if _is_json(response) else None
            if not isinstance(page, list):
                raise LogUnavailable(f"GitHub listed the deliveries of {hook.name} without "
                                     "a JSON list")
            for raw in page:
                delivery = _delivery(raw)
                if delivery is None:
                    continue
                if delivery.delivered_at < since:
                    return
                yield delivery
            cursor = httpx.URL(response.links.get("next", {}).get("url", "")).params.get(
                "cursor")
            if not cursor:
                return

    def redeliver(self, hook: Hook, delivery: HookDelivery) -> None:
        """Ask GitHub to deliver this attempt's event again (it answers 202)."""
        self._call("POST", f"{hook.path}/deliveries/{delivery.id}/attempts", hook)

    def close(self) -> None:
        self._http.close()

    def _call(self, method: str, path: str, hook: Hook,
              params: dict[str, str] | None = None) -> httpx.Response:
        try:
            response = self._http.request(method, path, params=params)
        except httpx.HTTPError as exc:
            raise LogUnavailable(f"could not reach GitHub for {method} {path}: "
                                 f"{type(exc).__name__}") from None
        if response.is_success:
            return response
        raise LogUnavailable(self._refusal(method, path, hook, response),
                             self._wait(response))

    def _refusal(self, method: str, path: str, hook: Hook, response: httpx.Response) -> str:
        detail = f"GitHub answered {response.status_code} to {method} {path}"
        if response.status_code == 404:
            detail += (f": is {hook.name} the right hook, and may FIRSTLINE_GITHUB_TOKEN "
                       "administer its webhooks (Webhooks: write)?")
        return detail.replace(self._token, "***") if self._token else detail

    def _wait(self, response: httpx.Response) -> float | None:
        """Read how long GitHub asks to wait: x-ratelimit-reset, Retry-After, a minute."""
        headers, now = response.headers, self._clock()
        if response.status_code not in (403, 429):
            return None
        if headers.get("x-ratelimit-remaining") == "0":
            try:
                return max(0.0, float(headers.get("x-ratelimit-reset", "")) - now)
            except ValueError:
                return _SECONDARY_WAIT
        wait = retry_after_value(headers.get("retry-after"), now)
        return wait if wait is not None else _SECONDARY_WAIT


def _is_json(response: httpx.Response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def _delivery(raw: object) -> HookDelivery | None:
    """Read one entry of the list; an entry without what is needed is skipped."""
    if not isinstance(raw, dict):
        return None
    ident, guid, code = raw.get("id"), raw.get("guid"), raw.get("status_code")
    try:
        when = parse_time(raw.get("delivered_at"))
    except ValueError:
        return None
    if not (isinstance(ident, int) and isinstance(guid, str) and guid and when
            and isinstance(code, int)):
        return None
    return HookDelivery(ident, guid, when, code, raw.get("redelivery") is True)

"""The small interface every vendor adapter implements, and the helpers they share.

Inbound, an adapter does no I/O: `verify()` checks a raw body against its headers and
secrets, `delivery_id()` reads the vendor's delivery id, and `parse()` turns a decoded
payload into a vendor-neutral `Event`. Exceptions:

    ValueError
     ├── PayloadError      JSON, but not a delivery this adapter understands (router.core.model)
     └── SignatureError    missing, malformed or non-matching signature, or a stale delivery
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal, Protocol

from router.core.model import Event, PayloadError, Severity, Source

Headers = Mapping[str, str]  # keys lower-cased by the caller
_FIRST_YEAR, _LAST_YEAR = 1970, 2999  # vendor timestamps outside these are not times


class SignatureError(ValueError):
    """The delivery's signature is missing, malformed or matches none of the secrets."""


@dataclass(frozen=True, slots=True)
class VerifyContext:
    """What a signature check needs besides the body and headers."""

    secrets: Sequence[bytes]  # one or more, for rotation
    now: float  # unix seconds, for replay windows (Linear)
    max_age: float = 60.0  # seconds (Linear `webhookTimestamp`)


@dataclass(frozen=True, slots=True)
class InboundAdapter:
    """One vendor's inbound side: verify, identify, parse. All pure functions."""

    source: Source
    verify: Callable[[bytes, Headers, VerifyContext], None]
    delivery_id: Callable[[Headers], str | None]
    parse: Callable[[Any, str | None], Event]  # (payload, event type header or None)


def parse_time(value: Any) -> datetime | None:
    """Read a vendor timestamp as an aware datetime (UTC when no offset is given).

    Accepts ISO 8601 with `Z`, `+00:00` or Jira's `+0000`, and epoch milliseconds (Jira's
    body `timestamp`, Linear's `webhookTimestamp`). Returns None for None/empty input.
    Strings and ints take a direct path: this runs for every timestamp of every delivery.
    """
    if type(value) is str and value:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not a timestamp: {value!r}") from None
        parsed = parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
    elif type(value) is int or type(value) is float:
        try:
            parsed = datetime.fromtimestamp(value / 1000.0, tz=UTC)
        except (OverflowError, OSError, ValueError):  # past what the platform's time_t holds
            raise ValueError(f"not a timestamp: {value!r}") from None
    elif value is None or value == "":
        return None
    else:
        raise ValueError(f"not a timestamp: {value!r}")
    if not _FIRST_YEAR <= parsed.year <= _LAST_YEAR:
        # Timers add durations to these times: year 1 or 9999 would overflow later.
        raise ValueError(f"not a timestamp: {value!r} is outside {_FIRST_YEAR}-{_LAST_YEAR}")
    return parsed


def optional_time(value: Any, what: str) -> datetime | None:
    """Like parse_time, but an unreadable value is a PayloadError naming `what`."""
    try:
        return parse_time(value)
    except ValueError as exc:
        raise PayloadError(f"{what}: {exc}") from None


def require_time(value: Any, what: str) -> datetime:
    """Like optional_time, and a missing value is a PayloadError naming `what` too."""
    parsed = optional_time(value, what)
    if parsed is None:
        raise PayloadError(f"{what} is missing")
    return parsed


# SPEC §3 default severities, by the raw priority name or number each vendor sends.
JIRA_SEVERITY: dict[str, Severity] = {
    "highest": "sev1", "high": "sev2", "medium": "sev3", "low": "sev4", "lowest": "sev4",
}
LINEAR_SEVERITY: dict[int, Severity] = {1: "sev1", 2: "sev2", 3: "sev3", 4: "sev4", 0: "sev4"}
PAGERDUTY_SEVERITY: dict[str, Severity] = {
    "p1": "sev1", "p2": "sev2", "p3": "sev3", "p4": "sev4", "p5": "sev4",
}
PAGERDUTY_URGENCY_SEVERITY: dict[str, Severity] = {"high": "sev2", "low": "sev4"}
GITHUB_LABEL_SEVERITY: dict[str, Severity] = {
    "sev1": "sev1", "sev2": "sev2", "sev3": "sev3", "sev4": "sev4",
    "p1": "sev1", "p2": "sev2", "p3": "sev3", "p4": "sev4",
}


# --- outbound: performing actions in the trackers ----------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """The item an action is about, as stored when the decision was made."""

    source: Source
    id: str  # immutable: Jira issue id, Linear issue id, GitHub "<repository id>#<number>"
    key: str  # Jira PROJ-1, Linear ENG-42, GitHub owner/repo#12, PagerDuty incident id
    kind: str  # ticket | pull_request | incident
    project: str | None  # Jira project key, Linear team key, GitHub owner/repo, PD service
    url: str | None = None


@dataclass(frozen=True, slots=True)
class OutboundAction:
    """One action from the outbox, ready to perform.

    `id` is the outbox row id: comments carry it as an invisible marker
    (`marker(id)`) so that a retry after a crash can see the comment already exists.
    `first_try` is true only when no earlier try of this action can have reached the
    vendor (the performer's first claim of the row, first quick try): a comment or note
    is then posted without looking for its marker, saving a read. Left false, the
    adapter looks, as every retry must.
    `page` and `resolve_page` always go to PagerDuty's Events API whatever the item's
    source; every other action goes to the item's own tracker. A `file_review` creates a
    ticket in `target.project` of `target.source` (the scope note's `reviews:`), assigned
    to `account`; its target names the escalation (`id` is `review-<escalation id>`) and,
    for Jira, the issue type (`kind`).
    """

    id: int
    # assign | unassign | comment | label | page | resolve_page | reassign_incident | note
    type: str
    target: Target
    account: str | None = None  # assignee account in the target's tool
    remove: tuple[str, ...] = ()  # accounts to take off (the CTO's)
    text: str | None = None  # comment / note text, page summary
    label: str | None = None
    dedup_key: str | None = None  # page / resolve_page
    severity: str | None = None  # page: sev1..sev4
    link: str | None = None  # page: where a person reads the decision
    first_try: bool = False  # nothing can have been posted yet: skip the marker lookup
    title: str | None = None  # file_review: the ticket's title (`text` is its body)
    labels: tuple[str, ...] = ()  # file_review: the ticket's labels


Status = Literal["ok", "retryable", "permanent"]


@dataclass(frozen=True, slots=True)
class Created:
    """A ticket an action created: the key people read and a link to open."""

    key: str
    url: str | None = None


@dataclass(frozen=True, slots=True)
class Result:
    """What became of one attempt. `retry_after` (seconds) honours Retry-After and the
    vendors' own reset headers; the retrier backs off on its own when it is None."""

    status: Status
    detail: str = ""
    retry_after: float | None = None
    created: Created | None = None  # what a `file_review` created (or found already made)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class OutboundAdapter(Protocol):
    """One vendor's outbound side. Never retries itself and never raises for vendor
    trouble: timeouts, 429 and 5xx are `retryable`, other refusals `permanent`."""

    @property
    def actions(self) -> frozenset[str]:
        """Name the action types `perform` knows; any other is refused as permanent."""
        ...

    def perform(self, action: OutboundAction) -> Result: ...


# Actions performed through PagerDuty whatever the item's source: pages go to the CTO's
# paging service. Every other action goes to the item's own tracker.
PAGING_ACTIONS = frozenset({"page", "resolve_page"})


def performer(action_type: str, source: str) -> str:
    """Name the tool (a key of adapters.outbound_adapters) that performs an action."""
    return "pagerduty" if action_type in PAGING_ACTIONS else source


MARKER_PREFIX = "firstline:action:"


def marker(action_id: int) -> str:
    """Return the invisible token a comment carries so a retry can find it."""
    return f"{MARKER_PREFIX}{action_id}"


def review_label(action: OutboundAction) -> str:
    """Return the label a review ticket carries naming its escalation (`target.id` is
    `review-<escalation id>`), which a retry looks it up by where the tracker has no
    better handle (Jira)."""
    return f"firstline-{action.target.id}"


class Stop(Exception):
    """Carry a finished Result out of nested calls inside an adapter; never leaves it."""

    def __init__(self, result: Result) -> None:
        super().__init__(result.detail)
        self.result = result


def retry_after_value(value: str | None, now: float | None = None) -> float | None:
    """Read a Retry-After value as seconds from `now`: delta-seconds or an HTTP date."""
    if not value or not value.strip():
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Read a response's `Retry-After` header (RFC 9110) as seconds from now."""
    return retry_after_value(headers.get("retry-after"), now)


def scrubbed(result: Result, secrets: Iterable[str]) -> Result:
    """Return the result with every secret blanked, should a vendor message echo one."""
    detail = result.detail
    for secret in secrets:
        if secret:
            detail = detail.replace(secret, "***")
    return result if detail == result.detail else replace(result, detail=detail)

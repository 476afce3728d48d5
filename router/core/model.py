"""The vendor-neutral data that flows from adapters into decide() and out to the store.

Adapters turn a vendor payload into an `Event`; `decide()` turns an `Event` plus what is
known about its item (`History`) into a `Decision`. All of these are frozen dataclasses
with slots: they are built a hundred thousand times a second in `replay` and the worker,
so they stay plain data (pydantic sits at the edges: the scope note, settings, the API).
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Source = Literal["jira", "linear", "github", "pagerduty"]
SOURCES: tuple[Source, ...] = ("jira", "linear", "github", "pagerduty")

Kind = Literal["ticket", "pull_request", "incident"]
KINDS: tuple[Kind, ...] = ("ticket", "pull_request", "incident")

Status = Literal["open", "in_progress", "acknowledged", "resolved"]
STATUSES: tuple[Status, ...] = ("open", "in_progress", "acknowledged", "resolved")

Severity = Literal["sev1", "sev2", "sev3", "sev4"]
SEVERITIES: tuple[Severity, ...] = ("sev1", "sev2", "sev3", "sev4")

Outcome = Literal["escalate", "reassign", "defer", "keep", "ignore"]
OUTCOMES: tuple[Outcome, ...] = ("escalate", "reassign", "defer", "keep", "ignore")


@dataclass(frozen=True, slots=True)
class WorkItem:
    """One ticket, pull request or incident as the source last described it.

    `assignees`, `reporter` and `actor` hold raw account ids as the vendor sends them
    (Jira accountId, Linear user id, GitHub login, PagerDuty user id); the scope note maps
    them to person keys when deciding. `severity` is the vendor default from SPEC §3
    (`default_severity`); the scope note's `severity:` rules may override it.
    """

    source: Source
    id: str
    key: str
    url: str | None
    kind: Kind
    project: str | None
    title: str
    description: str
    labels: frozenset[str]
    priority: str | None
    default_severity: Severity
    status: Status
    assignees: tuple[str, ...]
    reporter: str | None
    created_at: datetime
    updated_at: datetime
    # Extra containers the `project` predicate also accepts (PagerDuty: service id as
    # well as service name), lower-cased.
    project_aliases: frozenset[str] = frozenset()
    # PagerDuty only: when the incident was last reopened; timed clocks start there.
    reopened_at: datetime | None = None
    # PagerDuty only: the incident's `incident_key` (firstline's own pages start with
    # "firstline/") and service id, to recognise firstline's own pages.
    incident_key: str | None = None
    service_id: str | None = None
    # GitHub pull requests only: the head branch, which often names the ticket it fixes
    # (review checklists link items that name each other, router.reviews.links).
    branch: str | None = None


@dataclass(frozen=True, slots=True)
class ItemRef:
    """Names an item without carrying its state (a Jira comment's slim issue, a note)."""

    source: Source
    id: str
    key: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    """One parsed delivery: what happened, to which item, by whom, and when.

    `item` is the item's full state when the payload carries it; `None` when it does not
    (ping, check_suite, comments with a slim issue, PagerDuty notes, Linear Project...),
    in which case `ignore_reason` says why and `ref` names the item if there is one.
    `deleted` marks a removal: the item counts as resolved from then on.
    """

    source: Source
    event_type: str
    # The source's own time for this event, which orders deliveries about one item
    # (SPEC §6): GitHub issue/pull_request `updated_at`, Jira body `timestamp`, Linear
    # `data.updatedAt`, PagerDuty `occurred_at`. None when the payload carries no time
    # at all (a ping); callers then use the arrival time.
    occurred_at: datetime | None
    actor: str | None
    item: WorkItem | None
    ref: ItemRef | None = None
    ignore_reason: str | None = None
    deleted: bool = False
    # Assignment changes the payload itself reports (account ids), so the decision can
    # tell who put an assignee there: GitHub `assigned` with top-level `assignee`, Jira
    # changelog `assignee` items, Linear `updatedFrom.assigneeId`.
    assigned: tuple[str, ...] = ()
    unassigned: tuple[str, ...] = ()
    # A short, human-readable description for timelines: "created", "assigned to X"...
    summary: str = ""


class PayloadError(ValueError):
    """A payload that is JSON but not a delivery this adapter understands."""


# Check, MatchResult and TriggerHit are built tens of times per decision: plain slotted
# dataclasses construct 2.5x faster than frozen ones. Treat them as immutable all the same.
@dataclass(slots=True)
class Check:
    """One predicate of a match map, whether it held and what it saw."""

    key: str
    held: bool
    saw: str


@dataclass(slots=True)
class MatchResult:
    held: bool
    checks: tuple[Check, ...] = ()

    def because(self) -> list[str]:
        return [c.saw for c in self.checks if c.held]


@dataclass(slots=True)
class TriggerHit:
    """A trigger whose match holds: firing now (`due is None` or reached) or pending."""

    id: str
    name: str
    because: tuple[str, ...]
    due: datetime | None = None
    group_key: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """Something to do in a tracker. Performed from the outbox in enforce mode."""

    type: Literal[
        "assign", "unassign", "comment", "label", "page", "resolve_page",
        "reassign_incident", "note",
    ]
    to: str | None = None  # person key (assign/page/reassign_incident)
    account: str | None = None  # the person's account in the item's tool
    remove: tuple[str, ...] = ()  # accounts to take off (the CTO)
    text: str | None = None
    label: str | None = None
    dedup_key: str | None = None
    trigger: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for name in ("to", "account", "text", "label", "dedup_key", "trigger"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.remove:
            out["remove"] = list(self.remove)
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str
    severity: Severity | None = None
    owner: str | None = None  # person key who gets the work (backup while away)
    scope: str | None = None  # name of the owner line that matched
    triggers: tuple[TriggerHit, ...] = ()
    pending: tuple[TriggerHit, ...] = ()
    actions: tuple[Action, ...] = ()
    evidence: dict[str, Any] = field(default_factory=dict)
    # Bookkeeping for the store and the reports.
    cap_hours: float = 0.0  # hours this decision charges to the CTO's weekly cap
    exception: bool = False  # the CTO took it themself, or a person put it back
    handed_back: bool = False  # reached the CTO and firstline handed it on
    assigner: str | None = None  # who put the CTO there (person key or account)
    # Minutes from the item's creation to this decision, on the first decision that left
    # it with a first-response owner other than the CTO ("time to owner" in the reports).
    owner_minutes: float | None = None


@dataclass(frozen=True, slots=True)
class History:
    """What is known about an item before this event, and the ledger facts decide() needs.

    The per-item part (`newest_at` ... `member_of`) is kept by `router.history.remember`;
    the ledger part (`open_pages`, cap, paging rate) is filled in by whoever keeps the
    ledger (the database in the service, memory in `replay`). The default is what
    `explain` knows: nothing.
    """

    newest_at: datetime | None = None  # newest source timestamp seen for the item
    created_at: datetime | None = None  # creation time first seen (older PD payloads lack it)
    held_since: dict[str, datetime] = field(default_factory=dict)  # timed trigger -> stretch start
    assigned_by: dict[str, str | None] = field(default_factory=dict)  # account (lower) -> actor
    handed_away: bool = False  # firstline already took it off the CTO once
    owned: bool = False  # a decision already left it with a first-response owner
    # Open pages this item belongs to: dedup key -> how many other open items share it.
    member_of: dict[str, int] = field(default_factory=dict)
    open_pages: AbstractSet[str] = frozenset()  # every open page's dedup key
    cap_used_hours: float = 0.0  # CTO hours already used in the week of `now`
    charged_this_week: bool = False  # this item's cost already counts this week
    pages_last_hour: int = 0

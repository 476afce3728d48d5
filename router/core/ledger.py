"""The cross-item ledger: open pages, the weekly cap, timers. Pure rules plus a memory copy.

`effects()` says what one decision changes in the ledger; `MemoryLedger` (for `replay`)
and the database ledger (`router.db.ledger`, for the service) both apply exactly those
effects, so a replay predicts what the service does.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from router.core.durations import week_start
from router.core.history import remember
from router.core.model import Decision, Event, History, WorkItem
from router.core.outcomes import dedup_key
from router.scope.load import Scope

ItemId = tuple[str, str]  # (source, id)
DEFAULT_PAGE_HOURS = 1.0  # an escalation's CTO time when acknowledged->resolved is unknown

# What became of an escalation's page: kept as `shadow` (shadow mode: never sent), queued
# as `pending`, `sent` once PagerDuty accepted it, `dead` once its action gave up.
PAGE_STATES = ("shadow", "pending", "sent", "dead")


def first_page_state(mode: str) -> str:
    """Return the state a new page starts in under a scope note's `mode`."""
    return "pending" if mode == "enforce" else "shadow"


def is_open_page(state: str, mode: str) -> bool:
    """Tell whether a page of an open escalation still counts as open (SPEC §4).

    A page that was never sent is not open: a dead one never, a shadow one only while the
    note is in shadow mode (so a shadow replay groups as the shadow service does, and the
    first trigger after the switch to enforce pages for real).
    """
    return state in ("pending", "sent") or (state == "shadow" and mode == "shadow")


def page_hours(acknowledged: datetime | None, resolved: datetime | None) -> float:
    """Return an escalation's CTO time: acknowledged to resolved, else the default hour."""
    if acknowledged and resolved and resolved >= acknowledged:
        return (resolved - acknowledged).total_seconds() / 3600.0
    return DEFAULT_PAGE_HOURS


@dataclass(frozen=True, slots=True)
class PageOpened:
    dedup_key: str
    trigger: str


@dataclass(frozen=True, slots=True)
class Effects:
    """What one decision changes beyond the item itself."""

    opened: tuple[PageOpened, ...] = ()
    joined: tuple[str, ...] = ()  # open pages the item joins (incl. the ones it opened)
    resolved: tuple[str, ...] = ()  # pages to close
    leaves_pages: bool = False  # the item is resolved: it no longer keeps any page open
    charge_hours: float = 0.0  # CTO-owned work charged to this week
    timers: tuple[tuple[str, datetime], ...] = ()  # (trigger id, due) to arm
    newer_state: bool = True  # the event's item state is the newest seen


def effects(event: Event, decision: Decision, history: History) -> Effects:
    """Return the ledger changes a decision makes; `history` is the item's before it."""
    item = event.item
    if item is None:
        return Effects(newer_state=False)
    opened = tuple(PageOpened(a.dedup_key, a.trigger or "")
                   for a in decision.actions if a.type == "page" and a.dedup_key)
    joined = [p.dedup_key for p in opened]
    if decision.outcome == "escalate":
        for hit in decision.triggers:
            key = dedup_key(hit.id, hit.group_key, item)
            if key in history.open_pages and key not in joined:
                joined.append(key)
    newer = (event.event_type == "timer" or history.newest_at is None
             or event.occurred_at is None or event.occurred_at >= history.newest_at)
    return Effects(
        opened=opened,
        joined=tuple(joined),
        resolved=tuple(a.dedup_key for a in decision.actions
                       if a.type == "resolve_page" and a.dedup_key),
        leaves_pages=item.status == "resolved" or event.deleted,
        charge_hours=decision.cap_hours,
        timers=tuple((hit.id, hit.due) for hit in decision.pending if hit.due is not None),
        newer_state=newer,
    )


@dataclass(order=True, slots=True)
class Timer:
    due: datetime
    seq: int
    item: ItemId = field(compare=False)
    trigger: str = field(compare=False)


@dataclass
class MemoryLedger:
    """What `replay` remembers between deliveries, as the database does for the service."""

    scope: Scope
    items: dict[ItemId, WorkItem] = field(default_factory=dict)
    histories: dict[ItemId, History] = field(default_factory=dict)
    pages: dict[str, set[ItemId]] = field(default_factory=dict)  # open page -> open members
    page_states: dict[str, str] = field(default_factory=dict)  # open page -> its state
    item_pages: dict[ItemId, set[str]] = field(default_factory=dict)  # the reverse index
    # Pages of the last hour, with the state each was opened in.
    page_times: deque[tuple[datetime, str]] = field(default_factory=deque)
    week_hours: dict[date, float] = field(default_factory=lambda: defaultdict(float))
    week_charged: dict[date, set[ItemId]] = field(default_factory=lambda: defaultdict(set))
    timers: list[Timer] = field(default_factory=list)
    armed: dict[tuple[ItemId, str], datetime] = field(default_factory=dict)
    _seq: int = 0

    def history(self, item_id: ItemId | None, now: datetime) -> History:
        """Return the item's history joined with the ledger's facts as of `now`."""
        base = self.histories.get(item_id, History()) if item_id else History()
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        mode = self.scope.mode
        for key, state in list(self.page_states.items()):
            if not is_open_page(state, mode):  # the note changed mode since it opened
                self._close(key)
        keys = self.item_pages.get(item_id, ()) if item_id else ()
        while self.page_times and self.page_times[0][0] <= now - timedelta(hours=1):
            self.page_times.popleft()  # replay moves forward in time
        return replace(
            base,
            member_of={key: len(self.pages[key]) - 1 for key in keys},
            open_pages=self.pages.keys(),
            cap_used_hours=self.week_hours[week],
            charged_this_week=item_id in self.week_charged[week],
            pages_last_hour=sum(1 for _, state in self.page_times if is_open_page(state, mode)),
        )

    def record(self, event: Event, decision: Decision, history: History, now: datetime) -> None:
        """Apply a decision's effects; `history` is what decide() was given."""
        item = event.item
        if item is None:
            return
        item_id = (item.source, item.id)
        change = effects(event, decision, history)
        if change.newer_state:
            self.items[item_id] = item
        self.histories[item_id] = remember(self.histories.get(item_id, History()), event,
                                           decision)
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        for page in change.opened:
            self.pages.setdefault(page.dedup_key, set())
            state = first_page_state(self.scope.mode)
            self.page_states[page.dedup_key] = state
            self.page_times.append((now, state))
            self.week_hours[week] += DEFAULT_PAGE_HOURS
        for key in change.joined:
            self.pages[key].add(item_id)
            self.item_pages.setdefault(item_id, set()).add(key)
        for key in change.resolved:
            self._close(key)
        if change.leaves_pages:
            for key in self.item_pages.pop(item_id, set()):
                self.pages[key].discard(item_id)
        if change.charge_hours:
            self.week_hours[week] += change.charge_hours
            self.week_charged[week].add(item_id)
        for trigger, due in change.timers:
            if self.armed.get((item_id, trigger)) != due:
                self.armed[(item_id, trigger)] = due
                self._seq += 1
                heapq.heappush(self.timers, Timer(due, self._seq, item_id, trigger))

    def _close(self, key: str) -> None:
        self.page_states.pop(key, None)
        for member in self.pages.pop(key, set()):
            self.item_pages[member].discard(key)

    def pop_due(self, until: datetime | None) -> Timer | None:
        """Return the next timer due by `until` (any, if None), dropping superseded ones."""
        while self.timers and (until is None or self.timers[0].due <= until):
            timer = heapq.heappop(self.timers)
            if self.armed.get((timer.item, timer.trigger)) != timer.due:
                continue  # re-armed for another time since
            del self.armed[(timer.item, timer.trigger)]
            history = self.histories.get(timer.item)
            if history is not None and timer.trigger in history.held_since:
                return timer
        return None

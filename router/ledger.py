"""Keep the cross-item ledger in memory: open pages, the weekly cap, timers (for `replay`).

The service keeps the same facts in its database; both feed `decide()` a `History` and
apply decisions with the same rules (`record`), so a replay predicts what the service does.
"""

from __future__ import annotations

import heapq
from collections import defaultdict, deque
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

from router.durations import week_start
from router.history import remember
from router.model import Decision, Event, History, WorkItem
from router.outcomes import dedup_key
from router.scope import Scope

ItemId = tuple[str, str]  # (source, id)
DEFAULT_PAGE_HOURS = 1.0  # an escalation's CTO time when acknowledged->resolved is unknown


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
    item_pages: dict[ItemId, set[str]] = field(default_factory=dict)  # the reverse index
    page_times: deque[datetime] = field(default_factory=deque)  # pages of the last hour
    week_hours: dict[date, float] = field(default_factory=lambda: defaultdict(float))
    week_charged: dict[date, set[ItemId]] = field(default_factory=lambda: defaultdict(set))
    timers: list[Timer] = field(default_factory=list)
    armed: dict[tuple[ItemId, str], datetime] = field(default_factory=dict)
    _seq: int = 0

    def history(self, item_id: ItemId | None, now: datetime) -> History:
        """Return the item's history joined with the ledger's facts as of `now`."""
        base = self.histories.get(item_id, History()) if item_id else History()
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        keys = self.item_pages.get(item_id, ()) if item_id else ()
        member_of = {key: len(self.pages[key]) - 1 for key in keys}
        while self.page_times and self.page_times[0] <= now - timedelta(hours=1):
            self.page_times.popleft()  # replay moves forward in time
        return replace(
            base,
            member_of=member_of,
            open_pages=self.pages.keys(),
            cap_used_hours=self.week_hours[week],
            charged_this_week=item_id in self.week_charged[week],
            pages_last_hour=len(self.page_times),
        )

    def record(self, event: Event, decision: Decision, now: datetime) -> None:
        """Apply a decision: remember the item, open/join/resolve pages, charge the cap."""
        item = event.item
        if item is None:
            return
        item_id = (item.source, item.id)
        old = self.histories.get(item_id, History())
        if event.event_type == "timer" or old.newest_at is None or (
                event.occurred_at is None or event.occurred_at >= old.newest_at):
            self.items[item_id] = item
        self.histories[item_id] = remember(old, event, decision)
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        for action in decision.actions:
            if action.type == "page" and action.dedup_key:
                self.pages.setdefault(action.dedup_key, set())
                self._join(action.dedup_key, item_id)
                self.page_times.append(now)
                self.week_hours[week] += DEFAULT_PAGE_HOURS
            elif action.type == "resolve_page" and action.dedup_key:
                for member in self.pages.pop(action.dedup_key, set()):
                    self.item_pages[member].discard(action.dedup_key)
        if decision.outcome == "escalate":
            for hit in decision.triggers:
                key = dedup_key(hit.id, hit.group_key, item)
                if key in self.pages:
                    self._join(key, item_id)
        if item.status == "resolved" or event.deleted:
            for key in self.item_pages.pop(item_id, set()):
                self.pages[key].discard(item_id)
        if decision.cap_hours:
            self.week_hours[week] += decision.cap_hours
            self.week_charged[week].add(item_id)
        for hit in decision.pending:
            if hit.due is not None and self.armed.get((item_id, hit.id)) != hit.due:
                self.armed[(item_id, hit.id)] = hit.due
                self._seq += 1
                heapq.heappush(self.timers, Timer(hit.due, self._seq, item_id, hit.id))

    def _join(self, key: str, item_id: ItemId) -> None:
        self.pages[key].add(item_id)
        self.item_pages.setdefault(item_id, set()).add(key)

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

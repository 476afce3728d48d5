"""Replay recorded deliveries as a simulation in event time (SPEC §5 `replay`).

Deliveries are decided in the order of their own timestamps, each as of that time, with
the timers they arm firing at their due times in between, so a replay shows what the
service would have done, pages and all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from router.core.decide import decide
from router.core.ledger import MemoryLedger
from router.core.model import Decision, Event
from router.scope.load import Scope


@dataclass(frozen=True, slots=True)
class Delivery:
    """One recorded payload, parsed; `origin` says where it came from (a file, a row)."""

    origin: str
    event: Event


@dataclass(frozen=True, slots=True)
class Step:
    origin: str | None  # None for a decision made by a timer
    event: Event
    decision: Decision
    at: datetime | None


def order(deliveries: Iterable[Delivery]) -> list[Delivery]:
    """Sort by the source's own timestamp; ties and undated deliveries keep arrival order."""
    listed = list(deliveries)
    dated = [d.event.occurred_at for d in listed if d.event.occurred_at]
    floor = min(dated) if dated else None
    return sorted(listed, key=lambda d: d.event.occurred_at or floor or datetime.min)


def simulate(deliveries: Iterable[Delivery], scope: Scope, fire_remaining: bool = True) \
        -> Iterator[Step]:
    """Yield one step per delivery and per timer that came due, in event time."""
    ledger = MemoryLedger(scope)
    for delivery in order(deliveries):
        event = delivery.event
        yield from _fire_timers(ledger, scope, event.occurred_at)
        now = event.occurred_at or _latest(ledger)
        item_id = (event.item.source, event.item.id) if event.item else None
        history = ledger.history(item_id, now)
        decision = decide(event, scope, history, now)
        ledger.record(event, decision, history, now)
        yield Step(delivery.origin, event, decision, event.occurred_at)
    if fire_remaining:
        yield from _fire_timers(ledger, scope, None)


def _fire_timers(ledger: MemoryLedger, scope: Scope, until: datetime | None) -> Iterator[Step]:
    while (timer := ledger.pop_due(until)) is not None:
        item = ledger.items[timer.item]
        event = Event(source=item.source, event_type="timer", occurred_at=timer.due,
                      actor=None, item=item, summary=f"timer {timer.trigger} due")
        history = ledger.history(timer.item, timer.due)
        decision = decide(event, scope, history, timer.due)
        ledger.record(event, decision, history, timer.due)
        yield Step(None, event, decision, timer.due)


def _latest(ledger: MemoryLedger) -> datetime:
    newest = [h.newest_at for h in ledger.histories.values() if h.newest_at]
    return max(newest) if newest else datetime.now().astimezone()

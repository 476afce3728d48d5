"""Store recorded deliveries and decide each as of its own event time (`firstline db load`).

The service decides a delivery moments after the event; a delivery loaded weeks later
must be decided as it would have been then, or its weekly cap, away days and timed
triggers are judged at the wrong time. So the worker runs on an `EventClock` that is
set to each delivery's own timestamp before it is decided, after the timers that came
due before it have fired (each at its due time), exactly as `replay` simulates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from sqlalchemy import Engine

from router.core.simulate import Delivery as Recorded
from router.core.simulate import order
from router.db.inbox import Delivery, insert_delivery
from router.scope.load import Scope
from router.work.worker import Worker


class EventClock:
    """A clock that says what it was last set to: the worker decides as of that time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, to: datetime) -> None:
        """Move to `to`; never back, so timers and the cap only move forward."""
        self.now = max(self.now, to)


def catch_up(worker: Worker, clock: EventClock, to: datetime) -> int:
    """Decide everything stored and every timer due by `to`, as of their own times."""
    clock.advance(to)
    return worker.drain()


@dataclass(frozen=True, slots=True)
class Loaded:
    stored: int
    duplicates: int
    decided: int


def load_recorded(engine: Engine, scope: Callable[[], Scope], recorded: Iterable[Recorded],
                  raw: Callable[[Recorded], tuple[str, str | None, bytes]],
                  now: datetime | None = None) -> Loaded:
    """Store each recorded delivery in the inbox in event-time order and decide it as of
    its own time; then fire the timers due by `now` (default: the present).

    `raw(delivery)` gives its (source, event type, body). A delivery already stored
    (same source and origin) is not stored or decided again.
    """
    ordered = order(recorded)
    first = next((d.event.occurred_at for d in ordered if d.event.occurred_at), None)
    clock = EventClock(first or datetime.now(UTC))
    worker = Worker(engine, scope, clock)
    stored = duplicates = decided = 0
    for delivery in ordered:
        at = delivery.event.occurred_at or clock.now
        decided += catch_up(worker, clock, at)
        source, event_type, body = raw(delivery)
        with engine.begin() as conn:
            fate = insert_delivery(conn, Delivery(
                source, f"file:{delivery.origin}"[:255], event_type,
                orjson.dumps({"x-firstline-loaded-from": delivery.origin}).decode(), body,
                at))
        stored += fate.status == "accepted"
        duplicates += fate.status == "duplicate"
        decided += worker.drain()
    decided += catch_up(worker, clock, now or datetime.now(UTC))
    return Loaded(stored, duplicates, decided)

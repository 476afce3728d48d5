"""What-if: the last N days of stored deliveries replayed under the note in force and under
an edited one, and every decision that would change (the `replay --compare` engine).

Bounded so a what-if cannot take the service down: at most `MAX_DELIVERIES` of the
newest deliveries, and a deadline checked between decisions (a run past it stops and
says how far it got). Callers run it off the request thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from router.core.compare import Comparison, compare
from router.core.simulate import Step, simulate
from router.scope.load import Scope
from router.work.normalize import stored_deliveries

MAX_DAYS = 90
MAX_DELIVERIES = 20_000
DEADLINE_S = 20.0


class WhatIfTooSlow(RuntimeError):
    """The replay passed its deadline; the message says how far it got."""


@dataclass(frozen=True, slots=True)
class WhatIf:
    days: int
    deliveries: int
    truncated: bool  # more deliveries were stored in the span than were replayed
    comparison: Comparison
    seconds: float


def what_if(engine: Engine, current: Scope, edited: Scope, days: int, now: datetime,
            limit: int = MAX_DELIVERIES, deadline_s: float = DEADLINE_S) -> WhatIf:
    """Replay the deliveries received in the `days` before `now` under both notes."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days: give 1 to {MAX_DAYS}")
    began = time.monotonic()
    with engine.connect() as conn:
        deliveries = stored_deliveries(conn, now - timedelta(days=days), limit + 1)
    truncated = len(deliveries) > limit
    deliveries = deliveries[len(deliveries) - limit:] if truncated else deliveries
    stop = began + deadline_s
    old = list(_bounded(simulate(deliveries, current), stop, len(deliveries), "in force"))
    new = list(_bounded(simulate(deliveries, edited), stop, len(deliveries), "edited"))
    return WhatIf(days, len(deliveries), truncated, compare(old, new),
                  time.monotonic() - began)


def _bounded(steps: Iterable[Step], stop: float, total: int, which: str) -> Iterator[Step]:
    for n, step in enumerate(steps):
        if n % 64 == 0 and time.monotonic() > stop:
            raise WhatIfTooSlow(f"stopped at the deadline, {n} decisions into the {total} "
                                f"deliveries under the note {which}: try fewer days")
        yield step



class WhatIfBusy(RuntimeError):
    """Another what-if is running in this process."""


class WhatIfRunner:
    """Run what-ifs one at a time on a thread of their own, never on a request thread.

    A second what-if while one runs is refused rather than queued: each holds a core for
    up to its deadline, and the service has deliveries to decide.
    """

    def __init__(self, engine: Engine, deadline_s: float = DEADLINE_S) -> None:
        self.engine = engine
        self.deadline_s = deadline_s
        self._busy = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="firstline-whatif")

    async def run(self, current: Scope, edited: Scope, days: int, now: datetime) -> WhatIf:
        if not self._busy.acquire(blocking=False):
            raise WhatIfBusy("another what-if is running: try again when it is done")
        try:
            future = self._pool.submit(what_if, self.engine, current, edited, days, now,
                                       deadline_s=self.deadline_s)
            return await asyncio.wrap_future(future)
        finally:
            self._busy.release()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

"""Perform the outbox: each decision's actions in the trackers, at least once, with retries.

A claim is a lease: the row stays `pending` with `next_at` pushed past the time one
attempt can take, and no database lock is held while the vendor is called (on SQLite that
would stall ingest). A crash mid-attempt leaves the row due again when the lease ends;
the adapters' own checks (current assignee, comment marker, page dedup_key) make the
repeat take effect once.

Retry policy lives here only: a few quick tries in process (tenacity; Retry-After
honoured), then durable exponential backoff with jitter across restarts, then `dead`:
kept, counted on /metrics, listed by /readyz and `firstline outbox list`, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from adapters.base import OutboundAction, OutboundAdapter, Result, Target
from router.records import outbox
from router.wake import Waker
from router.worker import writer_turn

log = logging.getLogger("firstline.act")

LEASE = timedelta(minutes=2)  # longer than the quick tries of one action can take
QUICK_TRIES = 3
QUICK_WAIT_MAX = 5.0  # seconds: a longer Retry-After is waited out durably instead
MAX_ATTEMPTS = 8  # durable attempts before an action is dead (about 2 hours of backoff)
BACKOFF_BASE = 30.0  # seconds, doubled per durable attempt, with full jitter
BACKOFF_MAX = 3600.0
RECORD_TRIES = 5

Clock = Callable[[], datetime]


def _quick_wait(state: RetryCallState) -> float:
    result: Result = state.outcome.result()  # type: ignore[union-attr]
    if result.retry_after is not None:
        return min(result.retry_after, QUICK_WAIT_MAX)
    return float(wait_random_exponential(multiplier=0.2, max=QUICK_WAIT_MAX)(state))


def _stop(state: RetryCallState) -> bool:
    result: Result = state.outcome.result()  # type: ignore[union-attr]
    too_long = result.retry_after is not None and result.retry_after > QUICK_WAIT_MAX
    return too_long or stop_after_attempt(QUICK_TRIES)(state)


def _last_result(state: RetryCallState) -> Result:
    result: Result = state.outcome.result()  # type: ignore[union-attr]
    return result


def attempt(adapter: OutboundAdapter, action: OutboundAction,
            sleep: Callable[[float], None] | None = None) -> Result:
    """Perform one action with a few quick retries; never raises."""
    def once() -> Result:
        try:
            return adapter.perform(action)
        except Exception as exc:  # an adapter bug must not lose the action
            log.exception("adapter raised performing %s %s", action.type, action.target.key)
            return Result("retryable", f"{type(exc).__name__} in the adapter")

    retrying = Retrying(retry=retry_if_result(lambda r: r.status == "retryable"),
                        wait=_quick_wait, stop=_stop, sleep=sleep or time.sleep,
                        retry_error_callback=_last_result)
    result: Result = retrying(once)
    return result


def backoff(attempts: int, retry_after: float | None) -> float:
    """Return seconds until the next durable attempt: full jitter, at least Retry-After."""
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** max(0, attempts - 1))
    return max(retry_after or 0.0, random.uniform(ceiling / 2, ceiling))


class Actor:
    """Claim due outbox rows, perform them, record what happened."""

    def __init__(self, engine: Engine, adapters: Callable[[], Mapping[str, OutboundAdapter]],
                 clock: Clock, batch: int = 20,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.engine = engine
        self.adapters = adapters  # built on first use: no client is made before it is needed
        self.clock = clock
        self.batch = batch
        self.sleep = sleep
        self.done = 0
        self.dead = 0
        self.waker = Waker()

    def run_once(self) -> int:
        rows = self._claim()
        for row in rows:
            self._perform(row)
        return len(rows)

    def drain(self) -> int:
        total = 0
        while (n := self.run_once()) > 0:
            total += n
        return total

    async def run(self, stop: asyncio.Event, idle: float = 1.0) -> None:
        """Loop until `stop` is set; with nothing due, sleep until woken (the worker
        queued actions) or `idle` seconds pass (backoffs and leases running out)."""
        self.waker.bind()
        while not stop.is_set():
            try:
                busy = await asyncio.to_thread(self.run_once)
            except Exception:
                log.exception("outbox batch failed; retrying")
                busy = 0
            if not busy:
                await self.waker.sleep(idle)

    def _claim(self) -> list[Any]:
        now = self.clock()
        with writer_turn(self.engine), self.engine.begin() as conn:
            stmt = (select(outbox).where(outbox.c.status == "pending", outbox.c.next_at <= now)
                    .order_by(outbox.c.id).limit(self.batch))
            if conn.dialect.name == "postgresql":
                stmt = stmt.with_for_update(skip_locked=True)
            rows = list(conn.execute(stmt).all())
            if rows:
                conn.execute(update(outbox).where(outbox.c.id.in_([r.id for r in rows]))
                             .values(next_at=now + LEASE, attempts=outbox.c.attempts + 1))
        return rows

    def _perform(self, row: Any) -> None:
        action = to_action(row)
        tool = "pagerduty" if action.type in ("page", "resolve_page") else action.target.source
        adapter = self.adapters().get(tool)
        if adapter is None:
            result = Result("permanent", f"no {tool} client configured")
        else:
            result = attempt(adapter, action, self.sleep)
        self._record(row, action, result)

    def _record(self, row: Any, action: OutboundAction, result: Result) -> None:
        now = self.clock()
        attempts = row.attempts + 1
        values: dict[str, Any]
        if result.ok:
            values = dict(status="done", done_at=now, last_error=None)
            self.done += 1
        elif result.status == "retryable" and attempts < MAX_ATTEMPTS:
            values = dict(next_at=now + timedelta(seconds=backoff(attempts, result.retry_after)),
                          last_error=result.detail)
        else:
            values = dict(status="dead", last_error=result.detail)
            self.dead += 1
            level = logging.ERROR if action.type == "page" else logging.WARNING
            log.log(level, "action %s dead: %s on %s (%s): %s", row.id, action.type,
                    action.target.key, orjson.loads(row.action).get("trigger") or "-",
                    result.detail)
        for tries in range(RECORD_TRIES):
            try:
                with writer_turn(self.engine), self.engine.begin() as conn:
                    conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
                return
            except OperationalError:
                # SQLite's lock was busy past its timeout: the action took effect, so keep
                # trying to say so; if it never works, the lease runs out and the retry's
                # checks (assignee, marker, dedup_key) find it done.
                if tries == RECORD_TRIES - 1:
                    log.exception("could not record action %s; it is retried after its "
                                  "lease", row.id)
                    return
                time.sleep(0.05 * (tries + 1))


def to_action(row: Any) -> OutboundAction:
    """Rebuild the adapter's view of an outbox row."""
    data = orjson.loads(row.action)
    target = Target(**orjson.loads(row.target))
    text = data.get("text")
    if text and row.type in ("comment", "note"):
        text = f"{text}\n\n(firstline decision {row.decision_id})"
    return OutboundAction(id=row.id, type=row.type, target=target, account=data.get("account"),
                          remove=tuple(data.get("remove", ())), text=text,
                          label=data.get("label"), dedup_key=data.get("dedup_key"),
                          severity=data.get("severity"))

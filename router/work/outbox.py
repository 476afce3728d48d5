"""Perform the outbox: each decision's actions in the trackers, at least once, with retries.

A claim is a lease: the row stays `pending` with `next_at` pushed past the time one
attempt can take, and no database lock is held while the vendor is called (on SQLite that
would stall ingest). A crash mid-attempt leaves the row due again when the lease ends;
the adapters' own checks (current assignee, comment marker, page dedup_key) make the
repeat take effect once. Only the first try of a never-claimed row skips the marker
lookup: nothing can have been posted before it.

An item's actions are performed in id order however many performers run: a claim skips
an action while an earlier one of the same item is still pending and not due (leased by
another performer, or backing off), and takes the earlier ones that are due in the same
batch (see `Actor._claim`). A claimed batch is split into lanes: the actions on one item,
and pages sharing a dedup_key, stay in one lane in id order, and an action to be retried
stops its lane (the rest wait behind it). Lanes run side by side in a few threads
(vendor calls are slow, and a sequential performer held an alert storm for tens of
seconds). `Actor.run` claims whenever a lane is free and records results as lanes finish;
`Actor.run_once` (tests, `firstline worker --once`) does one batch start to end.

Retry policy lives here only: a few quick tries in process (tenacity; Retry-After
honoured), then durable exponential backoff with jitter across restarts, then `dead`:
kept, counted on /metrics, listed by /readyz and `firstline outbox list`, never dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, Executable, bindparam, select, update
from sqlalchemy.exc import OperationalError
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt
from tenacity.wait import wait_random_exponential

from adapters.base import OutboundAction, OutboundAdapter, Result, Target
from router.db.engine import writer_turn, xact_lock
from router.db.tables import outbox
from router.work.wake import Waker

log = logging.getLogger("firstline.act")

LEASE = timedelta(minutes=2)  # longer than the quick tries of one action can take
QUICK_TRIES = 3
QUICK_WAIT_MAX = 5.0  # seconds: a longer Retry-After is waited out durably instead
MAX_ATTEMPTS = 8  # durable attempts before an action is dead (about 2 hours of backoff)
BACKOFF_BASE = 30.0  # seconds, doubled per durable attempt, with full jitter
BACKOFF_MAX = 3600.0
RECORD_TRIES = 5
RECORD_WAIT = 0.02  # seconds a finished lane's results may wait to share a transaction
CONCURRENCY = 8  # lanes performed side by side; 1 performs a batch in id order, one by one
CLAIM_LOCK = 0x666C6F  # "flo": the advisory lock every claim takes (not worker.LEDGER_LOCK)

Clock = Callable[[], datetime]
Performed = tuple[Any, OutboundAction, Result]  # outbox row, its action, what became of it

# An earlier action of the same item still pending and not due holds a row back; an item
# of NULL equals nothing, so such a row is never held back.
_EARLIER = outbox.alias("earlier")
_HELD_BACK = (select(_EARLIER.c.id)
              .where(_EARLIER.c.item == outbox.c.item, _EARLIER.c.status == "pending",
                     _EARLIER.c.id < outbox.c.id, _EARLIER.c.next_at > bindparam("now"))
              .correlate(outbox).exists())
_CLAIMABLE = (select(outbox)
              .where(outbox.c.status == "pending", outbox.c.next_at <= bindparam("now"),
                     ~_HELD_BACK)
              .order_by(outbox.c.id).limit(bindparam("batch")))
# PostgreSQL leases what it selects in the same statement: the rows come back as they
# were before the lease (attempts, next_at), which `to_action` and `_BACK` need.
_CLAIMED = _CLAIMABLE.with_for_update(skip_locked=True).cte("claimed").prefix_with(
    "MATERIALIZED")
_LEASE_AND_READ = (select(_CLAIMED).order_by(_CLAIMED.c.id).add_cte(
    update(outbox).where(outbox.c.id == _CLAIMED.c.id)
    .values(next_at=bindparam("until"), attempts=outbox.c.attempts + 1).cte("leased")))

# Built once. Done rows share their values, so they are one statement (one round trip
# and one execution: per-row UPDATEs were most of the statements PostgreSQL ran at a
# steady 200 deliveries/s); the rarer outcomes run once per batch with each row's values.
_DONE = (update(outbox).where(outbox.c.id.in_(bindparam("row_ids", expanding=True)))
         .values(status="done", done_at=bindparam("at"), last_error=None))
# SQLite's lease (PostgreSQL's is in _LEASE_AND_READ).
_LEASE = (update(outbox).where(outbox.c.id.in_(bindparam("row_ids", expanding=True)))
          .values(next_at=bindparam("until"), attempts=outbox.c.attempts + 1))
_WAIT = (update(outbox).where(outbox.c.id == bindparam("row_id"))
         .values(next_at=bindparam("at"), last_error=bindparam("error")))
_DEAD = (update(outbox).where(outbox.c.id == bindparam("row_id"))
         .values(status="dead", last_error=bindparam("error")))
_BACK = (update(outbox).where(outbox.c.id == bindparam("row_id"))
         .values(next_at=bindparam("at"), attempts=bindparam("attempts")))


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
    """Perform one action with a few quick retries; never raises.

    Only the first quick try keeps `first_try`: a try that failed may still have taken
    effect (a timeout after the vendor applied it), so every later one looks first.
    """
    def once() -> Result:
        nonlocal action
        try:
            return adapter.perform(action)
        except Exception as exc:  # an adapter bug must not lose the action
            log.exception("adapter raised performing %s %s", action.type, action.target.key)
            return Result("retryable", f"{type(exc).__name__} in the adapter")
        finally:
            action = replace(action, first_try=False)

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
                 sleep: Callable[[float], None] | None = None,
                 concurrency: int = CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError(f"outbox concurrency must be at least 1, not {concurrency}")
        self.engine = engine
        self.adapters = adapters  # built on first use: no client is made before it is needed
        self.clock = clock
        self.batch = batch
        self.sleep = sleep
        self.concurrency = concurrency
        self.done = 0
        self.dead = 0
        self.waker = Waker()
        self._pool: ThreadPoolExecutor | None = None

    def run_once(self) -> int:
        """Claim a batch, perform it, record it; return how many rows were claimed."""
        rows = self._claim()
        if rows:
            self._record(*self._perform(rows))
        return len(rows)

    def drain(self) -> int:
        total = 0
        while (n := self.run_once()) > 0:
            total += n
        return total

    async def run(self, stop: asyncio.Event, idle: float = 1.0,
                  record_wait: float = RECORD_WAIT) -> None:
        """Perform until `stop` is set, continuously: claim when due actions may be
        waiting and a lane is free, start each lane as soon as it is claimed, and record
        finished lanes in the transaction of the next claim. No batch waits for its
        slowest lane, nor the next claim for a batch.

        Due actions may be waiting after a wake-up (the worker decided a batch), after a
        claim that filled its batch, and every `idle` seconds (backoffs ending, expired
        leases). Results wait at most `record_wait` seconds for other results and the next
        claim to share their transaction: a transaction per finished lane was a third of
        the performer's CPU at a steady 200 deliveries/s. Recording also claims, since a
        recorded action may free the later actions of its item.
        """
        self.waker.bind()
        loop = asyncio.get_running_loop()
        pool = self._lane_pool()
        results: list[Performed] = []
        released: list[Any] = []
        running = 0
        due = True  # due actions may be waiting
        claimed_at = unrecorded_since = loop.time()
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: self.waker.nudge())

        def lane_done(future: asyncio.Future[tuple[list[Performed], list[Any]]]) -> None:
            nonlocal running, unrecorded_since
            running -= 1
            try:
                performed, untouched = future.result()
            except Exception:  # a bug; the lane's rows are retried after their lease
                log.exception("an outbox lane failed")
                performed, untouched = [], []
            if not results and not released:
                unrecorded_since = loop.time()
            results.extend(performed)
            released.extend(untouched)
            self.waker.nudge()  # a lane is free, and there is something to record

        try:
            while not (stop.is_set() and running == 0 and not results and not released):
                now = loop.time()
                free = running < self.concurrency and not stop.is_set()
                unrecorded = bool(results or released)
                record = unrecorded and (stop.is_set() or now - unrecorded_since >= record_wait)
                want = self.batch if free and (due or record) else 0
                if want or record:
                    performed, untouched = results[:], released[:]
                    results.clear()
                    released.clear()
                    try:
                        # On the loop's thread: a hop to a thread and back cost more
                        # wall time than the claim on a busy machine. Lanes run in their
                        # own threads; what else the loop holds (lane callbacks, the
                        # worker's loop with `--performers 0`) can wait one claim.
                        rows = self._sync(performed, untouched, want)
                    except Exception:  # the database went away: keep the service up
                        log.exception("outbox claim failed; retrying")
                        results[:0], released[:0] = performed, untouched  # record them later
                        if await self.waker.sleep(min(idle, 0.1)):
                            due = True  # a wake-up came meanwhile
                        continue  # `due` unchanged: the failed claim is tried again
                    if want:
                        due, claimed_at = len(rows) >= want, now
                    adapters = self.adapters()
                    for lane in lanes(self._actions(rows)):
                        running += 1
                        future = loop.run_in_executor(pool, _perform_lane, adapters,
                                                      self.sleep, lane)
                        future.add_done_callback(lane_done)
                    continue
                wait = claimed_at + idle - now
                if unrecorded:
                    wait = min(wait, unrecorded_since + record_wait - now)
                if await self.waker.sleep(wait) or loop.time() - claimed_at >= idle:
                    due = True
        finally:
            stopping.cancel()
            self.close()

    def close(self) -> None:
        """Stop the lanes' threads (after the lanes in hand)."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def _lane_pool(self) -> ThreadPoolExecutor:
        if self._pool is None:  # kept across batches: starting threads per batch adds up
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                            thread_name_prefix="firstline-act")
        return self._pool

    def _claim(self) -> list[Any]:
        return self._sync((), (), self.batch)

    def _sync(self, performed: Sequence[Performed], untouched: Sequence[Any],
              want: int) -> list[Any]:
        """Record results (see `_outcomes`) and lease up to `want` due actions, in one
        transaction; return the leased rows.

        On SQLite a busy lock past its timeout is tried again: the actions took effect, so
        keep trying to say so; if it never works, the leases run out and the retries'
        checks (assignee, marker, dedup_key) find them done.
        """
        writes = self._outcomes(performed, untouched)
        for tries in range(RECORD_TRIES):
            try:
                with writer_turn(self.engine), self.engine.begin() as conn:
                    for stmt, params in writes:
                        conn.execute(stmt, params)
                    return self._lease(conn, want) if want else []
            except OperationalError:
                if tries == RECORD_TRIES - 1:
                    if writes:
                        log.exception("could not record actions %s; they are retried after "
                                      "their lease", ", ".join(str(p[0].id) for p in performed))
                        return []
                    raise
                time.sleep(0.05 * (tries + 1))
        return []

    def _lease(self, conn: Connection, want: int) -> list[Any]:
        """Lease a batch of due actions, in id order, keeping each item's actions in order.

        A due action is skipped while an earlier action of its item is pending and not due:
        leased by another performer, or backing off. So an action in durable backoff (a
        429 with a long Retry-After, say) holds back the later actions of its item until it
        is done or dead; a done or dead action holds nothing back. Earlier actions that are
        due come first in the same batch. Claims take turns, so two cannot split an item
        between them: on PostgreSQL by a transaction advisory lock (SKIP LOCKED alone could
        skip an earlier row another claim has locked and take the later one), on SQLite by
        its write lock (`writer_turn`, and the worker engine's BEGIN IMMEDIATE).
        """
        now = self.clock()
        if conn.dialect.name == "postgresql":
            xact_lock(conn, CLAIM_LOCK)
            return list(conn.execute(_LEASE_AND_READ, {"now": now, "batch": want,
                                                        "until": now + LEASE}).all())
        rows = list(conn.execute(_CLAIMABLE, {"now": now, "batch": want}).all())
        if rows:
            conn.execute(_LEASE, {"row_ids": [r.id for r in rows], "until": now + LEASE})
        return rows

    def _actions(self, rows: Sequence[Any]) -> list[tuple[Any, OutboundAction]]:
        work: list[tuple[Any, OutboundAction]] = []
        for row in rows:
            try:
                work.append((row, to_action(row)))
            except (ValueError, TypeError, KeyError):  # not ours to fix here: keep it leased
                log.exception("outbox row %s cannot be read; it is retried after its lease",
                              row.id)
        return work

    def _perform(self, rows: Sequence[Any]) -> tuple[list[Performed], list[Any]]:
        """Perform a batch: lanes side by side, each lane's actions one after another;
        return what was performed and the rows a lane left untouched."""
        work = self._actions(rows)
        adapters = self.adapters()
        runs = [work] if self.concurrency == 1 else lanes(work)
        if len(runs) <= 1:
            finished = [_perform_lane(adapters, self.sleep, run) for run in runs]
        else:
            finished = list(self._lane_pool().map(
                partial(_perform_lane, adapters, self.sleep), runs))
        return ([p for performed, _ in finished for p in performed],
                [r for _, untouched in finished for r in untouched])

    def _record(self, performed: Sequence[Performed], untouched: Sequence[Any] = ()) -> None:
        """Record results in one transaction (see `_outcomes`)."""
        self._sync(performed, untouched, 0)

    def _outcomes(self, performed: Sequence[Performed], untouched: Sequence[Any]
                  ) -> list[tuple[Executable, list[dict[str, Any]] | dict[str, Any]]]:
        """Return the statements that record results: done, waiting out a backoff, dead
        (logged; at error level for a page); rows a lane left untouched (behind an action
        that must be retried) go back as they were before their claim."""
        now = self.clock()
        back = [{"row_id": row.id, "at": row.next_at, "attempts": row.attempts}
                for row in untouched]
        done: list[int] = []
        waiting: list[dict[str, Any]] = []
        dead: list[dict[str, Any]] = []
        for row, action, result in performed:
            attempts = row.attempts + 1
            if result.ok:
                done.append(row.id)
                self.done += 1
            elif result.status == "retryable" and attempts < MAX_ATTEMPTS:
                wait = timedelta(seconds=backoff(attempts, result.retry_after))
                waiting.append({"row_id": row.id, "at": now + wait, "error": result.detail})
            else:
                dead.append({"row_id": row.id, "error": result.detail})
                self.dead += 1
                level = logging.ERROR if action.type == "page" else logging.WARNING
                log.log(level, "action %s dead: %s on %s (%s): %s", row.id, action.type,
                        action.target.key, orjson.loads(row.action).get("trigger") or "-",
                        result.detail)
        writes: list[tuple[Executable, list[dict[str, Any]] | dict[str, Any]]] = []
        if done:
            writes.append((_DONE, {"row_ids": done, "at": now}))
        writes += [(stmt, params) for stmt, params in
                   ((_WAIT, waiting), (_DEAD, dead), (_BACK, back)) if params]
        return writes


def _perform_lane(adapters: Mapping[str, OutboundAdapter], sleep: Callable[[float], None] | None,
                  lane: Sequence[tuple[Any, OutboundAction]]
                  ) -> tuple[list[Performed], list[Any]]:
    """Perform one lane's actions in order. An action to be retried stops the lane: the
    rest are returned untouched and wait behind it (router.work.outbox: `Actor._claim`); a done
    or dead action lets the next one go."""
    performed: list[Performed] = []
    for n, (row, action) in enumerate(lane):
        tool = "pagerduty" if action.type in ("page", "resolve_page") else action.target.source
        adapter = adapters.get(tool)
        if adapter is None:
            result = Result("permanent", f"no {tool} client configured")
        else:
            result = attempt(adapter, action, sleep)
        performed.append((row, action, result))
        if result.status == "retryable" and row.attempts + 1 < MAX_ATTEMPTS:
            return performed, [later for later, _ in lane[n + 1:]]
    return performed, []


def lanes(work: Sequence[tuple[Any, OutboundAction]]) -> list[list[tuple[Any, OutboundAction]]]:
    """Split a batch into lanes that may run side by side, each kept in the batch's order.

    Actions share a lane when they are about the same item (its source and id), or are
    pages with the same dedup_key: a group's (or the storm's) page resolved for one item
    and triggered anew for another must not be overtaken by the trigger.
    """
    parent = list(range(len(work)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, ...], int] = {}
    for i, (_, action) in enumerate(work):
        keys: list[tuple[str, ...]] = [("item", action.target.source, action.target.id)]
        if action.type in ("page", "resolve_page") and action.dedup_key:
            keys.append(("page", action.dedup_key))
        for key in keys:
            parent[root(i)] = root(first.setdefault(key, i))
    grouped: dict[int, list[tuple[Any, OutboundAction]]] = {}
    for i, item in enumerate(work):
        grouped.setdefault(root(i), []).append(item)
    return list(grouped.values())


def to_action(row: Any) -> OutboundAction:
    """Rebuild the adapter's view of an outbox row, as it was read when claimed.

    It is a first try only if the row was never claimed before: claiming counts an
    attempt, and every way back to `pending` (backoff, `firstline outbox retry`, which
    resets `attempts`) moves `next_at` off the `created_at` it was queued with.
    """
    data = orjson.loads(row.action)
    target = Target(**orjson.loads(row.target))
    text = data.get("text")
    if text and row.type in ("comment", "note"):
        text = f"{text}\n\n(firstline decision {row.decision_id})"
    first_try = row.attempts == 0 and row.next_at == row.created_at
    return OutboundAction(id=row.id, type=row.type, target=target, account=data.get("account"),
                          remove=tuple(data.get("remove", ())), text=text,
                          label=data.get("label"), dedup_key=data.get("dedup_key"),
                          severity=data.get("severity"), first_try=first_try)

"""Perform the outbox: each decision's actions in the trackers, at least once, with retries.

`Performer.run` is the scheduler. It claims due actions (router.db.outbox: leases, each
item's actions in id order), splits them into lanes (the actions on one item, and pages
sharing a dedup_key, in one lane in id order) and performs the lanes side by side in a
few threads: vendor calls are slow, and one at a time held an alert storm for tens of
seconds. An action to be retried stops its lane; the rest go back untouched. Each lane
reports to the scheduler's mailbox when it finishes, and `settle` turns what happened into
rows to write (router.work.retry decides done, backoff or dead). Only the first try of a
never-claimed row skips the adapter's marker lookup: nothing can have been posted before.

`Performer.run_once` (tests, `firstline worker --once`) does one batch start to end.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import OperationalError

from adapters.base import (
    PAGING_ACTIONS,
    OutboundAction,
    OutboundAdapter,
    Result,
    Target,
    performer,
)
from router.db.engine import writer_turn
from router.db.outbox import (
    Claimant,
    Outcomes,
    add_delivery_ids,
    claim,
    record,
    release_orphans,
)
from router.db.pages import WATCHED, Watched
from router.logs import events_on
from router.work.events import action_lines, log_lines
from router.work.metrics import Metrics
from router.work.retry import holds_lane, quick_stop, quick_wait, verdict

log = logging.getLogger("firstline.act")

CONCURRENCY = 8  # lanes performed side by side; 1 performs a batch in id order, one by one
RECORD_WAIT = 0.02  # seconds a finished lane's results may wait to share a transaction
RECORD_TRIES = 5
ORPHANS_EVERY = 5.0  # seconds between looks for rows claimed by dead performers (PostgreSQL)
WAKE = "wake"  # in the mailbox: the worker queued actions

Clock = Callable[[], datetime]
Sleep = Callable[[float], object]  # returns true to cut the quick tries short (stopping)
Performed = tuple[Any, OutboundAction, Result]  # outbox row, its action, what became of it


@dataclass
class Lane:
    """What one lane did: actions performed, and rows it left untouched behind a retry."""

    performed: list[Performed] = field(default_factory=list)
    untouched: list[Any] = field(default_factory=list)
    took: dict[int, float] = field(default_factory=dict)  # row id: seconds its tries took

    def add(self, other: Lane) -> None:
        self.performed += other.performed
        self.untouched += other.untouched
        self.took.update(other.took)


class Performer:
    """Claim due outbox rows, perform them, record what happened."""

    def __init__(self, engine: Engine, adapters: Callable[[], Mapping[str, OutboundAdapter]],
                 clock: Clock, batch: int = 20, sleep: Sleep | None = None,
                 concurrency: int = CONCURRENCY, metrics: Metrics | None = None) -> None:
        if concurrency < 1:
            raise ValueError(f"outbox concurrency must be at least 1, not {concurrency}")
        self.engine = engine
        self.adapters = adapters  # built on first use: no client is made before it is needed
        self.clock = clock
        self.batch = batch
        self.sleep = sleep
        self.concurrency = concurrency
        self.metrics = metrics or Metrics()
        self.claimant = Claimant(engine)
        self.mailbox: queue.SimpleQueue[Lane | str] = queue.SimpleQueue()
        self.stopping = threading.Event()
        self.done = 0
        self.dead = 0
        self._pool: ThreadPoolExecutor | None = None
        self._orphans_at = 0.0

    def wake(self) -> None:
        """Say that due actions may be waiting (the worker queued some); any thread."""
        self.mailbox.put(WAKE)

    def run_once(self) -> int:
        """Claim a batch, perform it, record it; return how many rows were claimed."""
        rows = self._sync(Lane(), self.batch)
        if rows:
            work = self._actions(rows)
            runs = [work] if self.concurrency == 1 else lanes(work)
            self._sync(_merge(self._pool_for_lanes().map(self._lane, runs)), 0)
        return len(rows)

    def drain(self) -> int:
        total = 0
        while (n := self.run_once()) > 0:
            total += n
        return total

    def run(self, stop: threading.Event, idle: float = 1.0,
            record_wait: float = RECORD_WAIT) -> None:
        """Perform until `stop` is set (then finish the lanes in hand; call `wake` after
        setting it). Claim while a lane is free and due actions may be waiting: at start,
        after a wake-up, after a claim that filled its batch, after recording (a recorded
        action may free its item's next), and every `idle` seconds. A finished lane's
        results wait up to `record_wait` for other lanes to share their transaction."""
        self.stopping = stop
        running, finished, due = 0, Lane(), True
        while running or finished.performed or finished.untouched or not stop.is_set():
            free = running < self.concurrency and not stop.is_set()
            want = self.batch if free and (due or finished.performed) else 0
            if want or finished.performed or finished.untouched:
                try:
                    rows = self._sync(finished, want)
                except Exception:  # the database went away: keep the results, try again
                    log.exception("outbox claim failed; retrying")
                    stop.wait(0.1)
                    continue
                finished, due = Lane(), due if not want else len(rows) >= want
                work = self._actions(rows)
                for lane in [work] if self.concurrency == 1 and work else lanes(work):
                    running += 1
                    self._pool_for_lanes().submit(self._report, lane)
            try:
                message = self.mailbox.get(timeout=idle)
            except queue.Empty:
                due = True
                continue
            deadline = time.monotonic() + record_wait
            while True:
                if isinstance(message, Lane):
                    running -= 1
                    finished.add(message)
                else:
                    due = True
                left = deadline - time.monotonic()
                if not (running and finished.performed and left > 0):
                    break
                try:
                    message = self.mailbox.get(timeout=left)
                except queue.Empty:
                    break
        self.close()

    def close(self) -> None:
        """Stop the lanes' threads (after the lanes in hand) and let the claims go."""
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None
        self.claimant.close()

    def _pool_for_lanes(self) -> ThreadPoolExecutor:
        if self._pool is None:  # kept across batches: starting threads per batch adds up
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency,
                                            thread_name_prefix="firstline-act")
        return self._pool

    def _report(self, lane: Sequence[tuple[Any, OutboundAction]]) -> None:
        try:
            done = self._lane(lane)
        except Exception:  # a bug: the lane's rows are retried after their lease
            log.exception("an outbox lane failed")
            done = Lane()
        self.mailbox.put(done)

    def _lane(self, lane: Sequence[tuple[Any, OutboundAction]]) -> Lane:
        adapters = self.adapters()
        return perform_lane(adapters, self.sleep or self.stopping.wait, lane, self.stopping)

    def _sync(self, finished: Lane, want: int) -> list[Any]:
        """Record results and lease up to `want` due actions, in one transaction; return
        the leased rows.

        On SQLite a busy lock past its timeout is tried again: the actions took effect, so
        keep trying to say so; if it never works, the leases run out and the retries'
        checks (assignee, marker, dedup_key) find them done.
        """
        outcomes = self.settle(finished)
        lines = action_lines(finished, outcomes) if events_on() else []
        if want:
            self.claimant.hold()
        for tries in range(RECORD_TRIES):
            try:
                with writer_turn(self.engine), self.engine.begin() as conn:
                    now = self.clock()
                    record(conn, outcomes, now)
                    if lines:
                        add_delivery_ids(conn, lines)
                    rows = self._claim(conn, now, want) if want else []
                log_lines(lines)  # committed
                return rows
            except OperationalError:
                if tries == RECORD_TRIES - 1:
                    if outcomes:
                        log.exception("could not record actions %s; they are retried after "
                                      "their lease", ", ".join(
                                          str(p[0].id) for p in finished.performed))
                        return []
                    raise
                time.sleep(0.05 * (tries + 1))
        return []

    def _claim(self, conn: Connection, now: datetime, want: int) -> list[Any]:
        if conn.dialect.name == "postgresql" and time.monotonic() >= self._orphans_at:
            self._orphans_at = time.monotonic() + ORPHANS_EVERY
            if released := release_orphans(conn, now):
                log.warning("took back %d actions claimed by a performer that is gone",
                            released)
        return claim(conn, now, want, self.claimant.id)

    def settle(self, finished: Lane) -> Outcomes:
        """Turn what the lanes did into rows to write: the one place where an action
        becomes done, waits out a backoff, or is dead (logged; at error level for a page).
        Rows a lane left untouched go back as they were before their claim."""
        now = self.clock()
        out = Outcomes(back=[{"row_id": r.id, "at": r.next_at, "attempts": r.attempts}
                             for r in finished.untouched])
        for row, action, result in finished.performed:
            fate = verdict(result, row.attempts + 1)
            if fate.kind != "wait" and row.type in WATCHED:
                created = result.created
                out.watched.append(Watched(row.id, row.decision_id, row.type,
                                           fate.kind == "done", created.key if created else None,
                                           created.url if created else None))
            if fate.kind == "done":
                out.done.append(row.id)
                self.done += 1
                self.metrics.actions.labels("done").inc()
                self.metrics.action_latency.labels(action.type).observe(
                    max(0.0, (now - row.created_at).total_seconds()))
            elif fate.kind == "wait":
                out.waiting.append({"row_id": row.id, "at": now + timedelta(seconds=fate.seconds),
                                    "error": result.detail})
            else:
                out.dead.append({"row_id": row.id, "error": result.detail})
                self.dead += 1
                self.metrics.actions.labels("dead").inc()
                level = logging.ERROR if action.type == "page" else logging.WARNING
                log.log(level, "action %s dead: %s on %s (%s): %s", row.id, action.type,
                        action.target.key, orjson.loads(row.action).get("trigger") or "-",
                        result.detail)
        return out

    def _actions(self, rows: Sequence[Any]) -> list[tuple[Any, OutboundAction]]:
        work: list[tuple[Any, OutboundAction]] = []
        for row in rows:
            try:
                work.append((row, to_action(row)))
            except (ValueError, TypeError, KeyError):  # not ours to fix here: keep it leased
                log.exception("outbox row %s cannot be read; it is retried after its lease",
                              row.id)
        return work


def attempt(adapter: OutboundAdapter, action: OutboundAction, sleep: Sleep) -> Result:
    """Perform one action with a few quick retries (router.work.retry); never raises.

    Only the first quick try keeps `first_try`: a try that failed may still have taken
    effect (a timeout after the vendor applied it), so every later one looks first.
    """
    tries = 0
    while True:
        try:
            result = adapter.perform(action)
        except Exception as exc:  # an adapter bug must not lose the action
            log.exception("adapter raised performing %s %s", action.type, action.target.key)
            result = Result("retryable", f"{type(exc).__name__} in the adapter")
        tries += 1
        if quick_stop(result, tries) or sleep(quick_wait(result, tries)):
            return result
        action = replace(action, first_try=False)


def perform_lane(adapters: Mapping[str, OutboundAdapter], sleep: Sleep,
                 lane: Sequence[tuple[Any, OutboundAction]],
                 stop: threading.Event | None = None) -> Lane:
    """Perform one lane's actions in order. An action to be retried stops the lane, and so
    does `stop`: the rest are returned untouched (the next claim takes them in order)."""
    done = Lane()
    for n, (row, action) in enumerate(lane):
        if stop is not None and stop.is_set():
            done.untouched = [later for later, _ in lane[n:]]
            return done
        tool = performer(action.type, action.target.source)
        adapter = adapters.get(tool)
        if adapter is None:
            result = Result("permanent", f"no {tool} client configured")
        else:
            started = time.monotonic()
            result = attempt(adapter, action, sleep)
            done.took[row.id] = time.monotonic() - started
        done.performed.append((row, action, result))
        if holds_lane(result, row.attempts + 1):
            done.untouched = [later for later, _ in lane[n + 1:]]
            return done
    return done


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
        if action.type in PAGING_ACTIONS and action.dedup_key:
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
    attempt, and every way back to `pending` (backoff, a released claim, `firstline outbox
    retry`, which resets `attempts`) moves `next_at` off the `created_at` it was queued with.
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
                          severity=data.get("severity"), first_try=first_try,
                          title=data.get("title"), labels=tuple(data.get("labels", ())))


def _merge(done: Iterable[Lane]) -> Lane:
    merged = Lane()
    for lane in done:
        merged.add(lane)
    return merged

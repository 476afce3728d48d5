"""Process stored deliveries and due timers: normalize, decide, record (SPEC §1, §8).

Each batch is one transaction: take the ledger lock, claim the oldest pending deliveries
(`FOR UPDATE SKIP LOCKED` on PostgreSQL), decide each, record the decisions and mark the
rows done, commit. A crash before the commit leaves the rows pending, so a restarted
worker decides them again and each delivery still ends with exactly one decision.

The ledger lock (a PostgreSQL transaction advisory lock; SQLite has one writer anyway)
makes replicas take turns on the ledger, so two workers never both open a page for the
same group, and deliveries are decided in arrival order.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, update

from router.core.decide import decide
from router.core.model import Decision, Event, History
from router.db.engine import writer_turn, xact_lock
from router.db.ledger import BufferedDecision, DbLedger, Origin
from router.db.notify import OUTBOX, notify
from router.db.tables import inbox, timers
from router.logs import events_on
from router.reviews.filing import file_reviews
from router.scope.load import Scope
from router.work.events import delivery_line, log_lines, timer_line
from router.work.metrics import Metrics
from router.work.normalize import parse_delivery

log = logging.getLogger("firstline.worker")
LEDGER_LOCK = 0x666C  # "fl": the advisory lock id every firstline worker takes
MAX_ATTEMPTS = 5
LOCK_RETRY_S = 0.001  # SQLite: how long to wait before trying the write lock again
LINGER = 0.015  # seconds a partial batch lets the next one gather (Worker.run)
TIMER_CHECK = timedelta(seconds=1)  # due timers are looked for at most this often

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Worker:
    """Decide what the inbox holds and what timers say, one transaction per batch."""

    def __init__(self, engine: Engine, scope: Callable[[], Scope], clock: Clock = utcnow,
                 batch: int | None = None, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.scope = scope  # a callable, so a SIGHUP reload takes effect at the next batch
        self.clock = clock
        # SQLite has one writer: smaller batches hold its lock for less time, so ingest
        # and the outbox performer are not kept waiting.
        self.batch = batch or (25 if engine.dialect.name == "sqlite" else 100)
        self.metrics = metrics or Metrics()
        self.last_beat = time.time()  # wall-clock time of the last loop, for /readyz
        self._timers_at = datetime.min.replace(tzinfo=UTC)  # when to look for due timers
        self.wakeup = threading.Event()  # set by ingest (or LISTEN): deliveries are waiting
        self.on_actions: Callable[[], None] | None = None  # a batch queued actions

    def run_once(self) -> int:
        """Process one batch of deliveries and one of due timers; return how many.

        A batch's writes that fail (a row the database refuses) roll the whole
        transaction back, and the batch is redone one delivery at a time, each in a
        savepoint, so the bad row fails alone. The fast path has no savepoint: two round
        trips per batch for what almost never happens.
        """
        tally = _Tally()
        try:
            done = self._batch(tally, careful=False)
        except _BatchFailed as failed:
            log.warning("a batch of %d deliveries failed; deciding them one at a time",
                        failed.rows, exc_info=failed.__cause__)
            tally = _Tally()
            done = self._batch(tally, careful=True)
        tally.add_to(self.metrics)  # counted once committed
        self.last_beat = time.time()
        if tally.queued and self.on_actions is not None:
            self.on_actions()
        return done

    def _batch(self, tally: _Tally, careful: bool) -> int:
        """One transaction: a batch of deliveries, then due timers if it is time to look
        (a query per batch for what comes due in minutes was a tenth of a batch's time)."""
        with writer_turn(self.engine), self.engine.begin() as conn:
            self._lock(conn)
            done = self._deliveries(conn, tally, careful)
            now = self.clock()
            if now >= self._timers_at:
                fired = self._timers(conn, tally, now)
                self._timers_at = now if fired == self.batch else now + TIMER_CHECK
                done += fired
            if tally.queued and conn.dialect.name == "postgresql":
                notify(conn, OUTBOX)  # performers in other processes: sent at the commit
        return done

    def drain(self) -> int:
        """Process until nothing is pending or due (tests, `firstline worker --once`)."""
        total = 0
        while (n := self.run_once()) > 0:
            total += n
        return total

    def run(self, stop: threading.Event, idle: float = 1.0, linger: float = LINGER) -> None:
        """Loop until `stop` is set (then call `wake`). With nothing to do, sleep until
        woken (deliveries stored, by this process or, through LISTEN, another) or `idle`
        seconds pass (timers coming due, a wake-up lost).

        After a partial batch, wait out `linger` seconds from its start before the next,
        so deliveries arriving meanwhile share one batch: a batch's fixed cost (its
        transaction and a dozen statements) was most of the CPU at a steady 200
        deliveries/s, when every delivery came alone. A lone delivery after a quiet spell
        still starts a batch at once.
        """
        while not stop.is_set():
            started = time.monotonic()
            self.wakeup.clear()  # before the batch: a delivery stored during it wakes the next
            try:
                done = self.run_once()
            except Exception:  # the database went away: keep the service up, try again
                log.exception("worker batch failed; retrying")
                done = 0
            if not done:
                self.wakeup.wait(idle)
            elif done < self.batch and (rest := linger - (time.monotonic() - started)) > 0:
                stop.wait(rest)

    def wake(self) -> None:
        """Say that deliveries are waiting; safe from any thread."""
        self.wakeup.set()

    def _lock(self, conn: Connection) -> None:
        # SQLite: `worker_engine` already began the transaction IMMEDIATE (the write lock).
        if conn.dialect.name == "postgresql":
            xact_lock(conn, LEDGER_LOCK)

    def _deliveries(self, conn: Connection, tally: _Tally, careful: bool) -> int:
        stmt = _PENDING_FOR_UPDATE if conn.dialect.name == "postgresql" else _PENDING
        rows = conn.execute(stmt, {"b_limit": self.batch}).all()
        if not rows:
            return 0
        scope = self.scope()
        if careful:
            self._decide_one_by_one(conn, scope, rows, tally)
            return len(rows)
        try:
            self._decide_batch(conn, scope, rows, tally)
        except Exception as exc:  # a row broke the batch's writes: find it, decide the rest
            raise _BatchFailed(len(rows)) from exc
        return len(rows)

    def _decide_batch(self, conn: Connection, scope: Scope, rows: Sequence[Any],
                      tally: _Tally) -> None:
        """Decide every row, then write all the decisions with a few statements.

        A row that cannot be parsed or decided fails alone (both are pure); anything that
        goes wrong while recording raises, and the caller redoes the batch row by row.
        """
        now = self.clock()
        ledger = DbLedger(conn, scope, now)
        events: list[tuple[Any, Event | Exception]] = []
        for row in rows:
            try:
                events.append((row, parse_delivery(row.source, row.event_type, row.body,
                                           row.received_at)))
            except Exception as exc:
                events.append((row, exc))
        ledger.prefetch((e.item.source, e.item.id) for _, e in events
                        if isinstance(e, Event) and e.item is not None)
        done: list[int] = []
        recorded: list[tuple[Any, BufferedDecision, datetime]] = []
        for row, parsed in events:
            now = self.clock()
            try:
                if isinstance(parsed, Exception):
                    raise parsed
                origin = Origin(inbox_id=row.id, delivery_id=row.delivery_id)
                decision, history = self._decision(ledger, scope, parsed, now)
            except Exception as exc:
                self._park(conn, row, exc, tally)
                continue
            recorded.append((row, ledger.record(parsed, decision, history, now, origin), now))
            done.append(row.id)
            tally.decided(decision.outcome, now - row.received_at)
        _flush(ledger, now)
        if events_on():
            tally.lines += [delivery_line(row, pending, at) for row, pending, at in recorded]
        tally.queued += ledger.queued
        if done:
            conn.execute(_DONE, {"b_ids": done, "b_at": now})  # one statement, not one per row

    def _decide_one_by_one(self, conn: Connection, scope: Scope, rows: Sequence[Any],
                           tally: _Tally) -> None:
        """The slow, careful path: each row in its own savepoint, written at once."""
        ledger = DbLedger(conn, scope, self.clock())
        for row in rows:
            now = self.clock()
            try:
                with conn.begin_nested():
                    event = parse_delivery(row.source, row.event_type, row.body, row.received_at)
                    decision, history = self._decision(ledger, scope, event, now)
                    pending = ledger.record(event, decision, history, now, Origin(
                        inbox_id=row.id, delivery_id=row.delivery_id))
                    _flush(ledger, now)
                    conn.execute(_DONE, {"b_ids": [row.id], "b_at": now})
                tally.decided(decision.outcome, now - row.received_at)
                if events_on():
                    tally.lines.append(delivery_line(row, pending, now))
                tally.queued += ledger.queued
                ledger.queued = 0
            except Exception as exc:
                self._park(conn, row, exc, tally)
                ledger = DbLedger(conn, scope, now)  # its memory may hold the failed row

    def _park(self, conn: Connection, row: Any, exc: Exception, tally: _Tally) -> None:
        """Count a failed attempt on a row; after MAX_ATTEMPTS keep it as `failed`.

        A bug must not block the queue: the rows behind it are still decided.
        """
        log.error("delivery %s (%s) could not be decided", row.id, row.source, exc_info=exc)
        failed = row.attempts + 1 >= MAX_ATTEMPTS
        conn.execute(update(inbox).where(inbox.c.id == row.id).values(
            attempts=row.attempts + 1, error=f"{type(exc).__name__}: {exc}"[:2000],
            status="failed" if failed else "pending"))
        tally.failed += failed
        if events_on():
            tally.lines.append({"event": "delivery", "delivery_id": row.delivery_id,
                                "source": row.source, "outcome": "failed" if failed else "retry",
                                "attempts": row.attempts + 1})

    def _timers(self, conn: Connection, tally: _Tally, now: datetime) -> int:
        rows = conn.execute(_DUE_TIMERS, {"b_now": now, "b_limit": self.batch}).all()
        if not rows:
            return 0
        scope = self.scope()
        ledger = DbLedger(conn, scope, now)
        ledger.prefetch((row.source, row.item_id) for row in rows)
        recorded: list[tuple[str, BufferedDecision]] = []
        for row in rows:
            ledger.fired(row.id, row.source, row.item_id, row.trigger_id)
            item, _ = ledger.load(row.source, row.item_id)
            if item is None:
                continue
            event = Event(source=item.source, event_type="timer", occurred_at=row.due_at,
                          actor=None, item=item, summary=f"timer {row.trigger_id} due")
            key = f"{row.source}:{row.item_id}:{row.trigger_id}:{row.due_at.isoformat()}"
            decision, history = self._decision(ledger, scope, event, row.due_at)
            recorded.append((key, ledger.record(event, decision, history, row.due_at,
                                                Origin(timer_key=key))))
            tally.timers_fired += 1
            tally.count(decision.outcome)
        _flush(ledger, now)
        if events_on():
            tally.lines += [timer_line(key, pending) for key, pending in recorded]
        tally.queued += ledger.queued
        return len(rows)

    def _decision(self, ledger: DbLedger, scope: Scope, event: Event,
                  now: datetime) -> tuple[Decision, History]:
        item = event.item
        history = ledger.history(item.source, item.id, now) if item else History()
        return decide(event, scope, history, now), history


def _flush(ledger: DbLedger, now: datetime) -> None:
    """Write the ledger's buffered rows, then queue the review tickets of the escalations
    they resolved (the reviews read those rows)."""
    ledger.flush()
    if ledger.resolved:
        filed = file_reviews(ledger.conn, ledger.scope, ledger.resolved, now)
        ledger.resolved.clear()
        if ledger.scope.mode == "enforce":
            ledger.queued += len(filed)


# Built once: building a statement and its cache key cost about as much as running it.
_DONE = (update(inbox).where(inbox.c.id.in_(bindparam("b_ids", expanding=True)))
         .values(status="done", processed_at=bindparam("b_at")))
_PENDING = (select(inbox.c.id, inbox.c.source, inbox.c.delivery_id, inbox.c.event_type,
                   inbox.c.body, inbox.c.received_at, inbox.c.attempts)
            .where(inbox.c.status == "pending").order_by(inbox.c.id)
            .limit(bindparam("b_limit")))
_PENDING_FOR_UPDATE = _PENDING.with_for_update(skip_locked=True)
_DUE_TIMERS = (select(timers.c.id, timers.c.source, timers.c.item_id, timers.c.trigger_id,
                      timers.c.due_at)
               .where(timers.c.armed.is_(True), timers.c.due_at <= bindparam("b_now"))
               .order_by(timers.c.due_at).limit(bindparam("b_limit")))


class _BatchFailed(Exception):
    """The fast path's writes failed: redo the batch one delivery at a time."""

    def __init__(self, rows: int) -> None:
        super().__init__(f"a batch of {rows} deliveries failed")
        self.rows = rows


@dataclass
class _Tally:
    """What one batch did, counted on /metrics once its transaction commits."""

    failed: int = 0
    timers_fired: int = 0
    queued: int = 0  # actions queued for the performers
    latencies: list[float] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    lines: list[dict[str, object]] = field(default_factory=list)  # JSON logs: one per event

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def decided(self, outcome: str, latency: timedelta) -> None:
        self.latencies.append(latency.total_seconds())
        self.count(outcome)

    def add_to(self, metrics: Metrics) -> None:
        for seconds in self.latencies:
            metrics.decision_latency.observe(seconds)
        metrics.deliveries_failed.inc(self.failed)
        metrics.timers_fired.inc(self.timers_fired)
        for outcome, n in self.outcomes.items():
            metrics.decisions.labels(outcome).inc(n)
        log_lines(self.lines)

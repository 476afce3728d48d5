"""Group commit for the inbox: concurrent webhook requests share one transaction.

Each request queues its row and waits; the writer inserts everything queued in one
multi-row statement, commits, and only then resolves each request's future, so every
answer still follows its own commit (SPEC §8). Under load many requests share a commit
(one fsync on PostgreSQL); a lone request is committed at once.

The writer runs on the event loop, not on a thread: the inserts release the GIL many
times per batch (each driver call), and a thread that must win the GIL back from a busy
event loop waits up to the 5 ms switch interval each time, which capped throughput at a
third of what the loop alone reaches (measured with wrk, bench/ingest.py).

- SQLite: one synchronous statement per batch on the writer's own connection, run after
  the request handlers of the current loop iteration, so the requests that arrived
  together commit together. That connection never waits: while another process (or the
  worker) holds the write lock, the batch is retried a millisecond later and keeps
  growing. It never checkpoints either: a checkpoint copies and fsyncs megabytes and
  would stall the loop, so a thread does it (`_Checkpointer`).
- PostgreSQL: an async psycopg connection; while a batch is in flight the loop keeps
  serving and the next batch fills.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Engine

from router import store

log = logging.getLogger(__name__)

MAX_BATCH = 500
# Senders give up after 5 s (Linear, PagerDuty): a batch that takes longer fails with a
# 503 in time for them to retry. SQLite bounds its waits with its busy timeout instead.
STORE_TIMEOUT_S = 4.0
PG_CONNECT_TIMEOUT_S = 3
CHECKPOINT_EVERY_S = 0.1
WAL_RESTART_BYTES = 16 * 1024 * 1024
RESTART_WAIT_MS = 50
LOCK_RETRY_S = 0.001
PG_IN_FLIGHT = int(__import__("os").environ.get("EXP_INFLIGHT", "2"))

Pending = tuple[store.Delivery, "asyncio.Future[store.Stored]"]


class StorageUnavailable(Exception):
    """The inbox could not be written; the sender should retry later."""


class InboxWriter:
    """Commit concurrent deliveries in groups (see module doc)."""

    def __init__(self, engine: Engine, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._max_batch = max_batch
        self._queue: list[Pending] = []
        self._scheduled = False
        self._flushers = 0  # PostgreSQL batches in flight
        self._tasks: set[asyncio.Task[None]] = set()
        self._pool: list[psycopg.AsyncConnection[tuple[object, ...]]] = []
        self._sqlite: Any = None  # the DB-API connection of a pooled SQLAlchemy connection
        self._locked_since: float | None = None
        self._checkpointer: _Checkpointer | None = None

    async def save(self, delivery: store.Delivery) -> store.Stored:
        """Queue one delivery; return once its batch is committed, or raise StorageUnavailable."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[store.Stored] = loop.create_future()
        self._queue.append((delivery, future))
        if self._postgres:
            if self._flushers < PG_IN_FLIGHT:
                self._flushers += 1
                task = loop.create_task(self._flush_postgres())
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush_sqlite)
        return await future

    def _take(self) -> list[Pending]:
        batch = self._queue[: self._max_batch]
        del self._queue[: self._max_batch]
        return batch

    def _flush_sqlite(self) -> None:
        """Commit everything queued, in batches; while another writer holds the lock, retry.

        The writer's connection does not wait for SQLite's lock (its busy handler would
        block the whole loop, and with it every request); the batch stays queued and is
        tried again a millisecond later, growing meanwhile, until STORE_TIMEOUT_S.
        """
        while self._queue:
            batch = self._queue[: self._max_batch]
            try:
                results = self._insert_sqlite([d for d, _ in batch])
            except sqlite3.OperationalError as exc:
                if _locked(exc) and self._retry_later():
                    return
                self._drop_sqlite()
                _fail(batch, exc)
            except Exception as exc:
                self._drop_sqlite()
                _fail(batch, exc)
            else:
                _resolve(batch, results)
            del self._queue[: len(batch)]
            self._locked_since = None
        self._scheduled = False

    def _retry_later(self) -> bool:
        """Schedule another try while the lock has been busy for less than the timeout."""
        now = time.monotonic()
        if self._locked_since is None:
            self._locked_since = now
        elif now - self._locked_since > STORE_TIMEOUT_S:
            return False
        asyncio.get_running_loop().call_later(LOCK_RETRY_S, self._flush_sqlite)
        return True

    def _insert_sqlite(self, rows: Sequence[store.Delivery]) -> list[store.Stored]:
        conn = self._sqlite_connection()
        plan = store.plan_insert("sqlite", rows)
        returned: list[tuple[object, ...]] = []
        try:
            for sql, params in plan.statements:
                returned += conn.execute(sql, params).fetchall()
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        return plan.outcome(returned)

    def _sqlite_connection(self) -> Any:
        if self._sqlite is None:
            self._sqlite = self._engine.raw_connection()
            self._sqlite.execute("PRAGMA wal_autocheckpoint=0")
            self._sqlite.execute("PRAGMA busy_timeout=0")  # see _flush_sqlite
            # Take the write lock at BEGIN: a deferred transaction could still fail at
            # its first write once another process commits (SQLITE_BUSY_SNAPSHOT).
            self._sqlite.isolation_level = "IMMEDIATE"
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self._engine)
                self._checkpointer.start()
        return self._sqlite

    def _drop_sqlite(self) -> None:
        conn, self._sqlite = self._sqlite, None
        if conn is not None:
            conn.invalidate()  # not back to the pool: autocheckpoint is off on it

    async def _flush_postgres(self) -> None:
        """Commit queued batches one after another until the queue is empty."""
        conn = self._pool.pop() if self._pool else None
        try:
            while self._queue:
                batch = self._take()
                try:
                    async with asyncio.timeout(STORE_TIMEOUT_S):
                        if conn is None:
                            conn = await self._connect()
                        results = await self._insert_postgres(conn, [d for d, _ in batch])
                except Exception as exc:
                    if conn is not None:
                        await _close_quietly(conn)
                    conn = None
                    _fail(batch, exc)
                else:
                    _resolve(batch, results)
        finally:
            self._flushers -= 1
            if conn is not None:
                self._pool.append(conn)

    async def _insert_postgres(
        self, conn: psycopg.AsyncConnection[tuple[object, ...]], rows: Sequence[store.Delivery]
    ) -> list[store.Stored]:
        """Insert on a writer connection; autocommit makes each statement durable."""
        plan = store.plan_insert("postgresql", rows)
        returned: list[tuple[object, ...]] = []
        if len(plan.statements) == 1:
            sql, params = plan.statements[0]
            returned = await (await conn.execute(sql, params)).fetchall()
        else:
            async with conn.transaction():
                for sql, params in plan.statements:
                    returned += await (await conn.execute(sql, params)).fetchall()
        return plan.outcome(returned)

    async def _connect(self) -> psycopg.AsyncConnection[tuple[object, ...]]:
        # The engine's URL minus SQLAlchemy's driver suffix is a libpq URI.
        url = self._engine.url.set(drivername="postgresql")
        return await psycopg.AsyncConnection.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,
            connect_timeout=PG_CONNECT_TIMEOUT_S,
        )

    async def aclose(self) -> None:
        """Finish the batches in flight and close the connections (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        while self._pool:
            await _close_quietly(self._pool.pop())
        self._drop_sqlite()
        if self._checkpointer is not None:
            self._checkpointer.stop()


async def _close_quietly(conn: psycopg.AsyncConnection[tuple[object, ...]]) -> None:
    """Close a connection that may already be broken; nothing is left to release then."""
    try:
        await conn.close()
    except Exception:
        log.debug("closing a broken inbox connection failed", exc_info=True)


class _Checkpointer(threading.Thread):
    """Checkpoint the SQLite WAL off the event loop, and keep the WAL from growing.

    A PASSIVE checkpoint copies the WAL into the database alongside the writers, but
    while writes never pause it never finishes, and the WAL only restarts from its
    beginning once one has. So when the WAL has grown past WAL_RESTART_BYTES, a RESTART
    checkpoint briefly holds writers off (ingest keeps its batches queued meanwhile) to
    copy the last frames and start the WAL over. Its wait for readers is capped short,
    so a long read cannot stall ingest behind it.
    """

    def __init__(self, engine: Engine) -> None:
        super().__init__(name="sqlite-checkpoint", daemon=True)
        self._engine = engine
        self._wal = Path(f"{engine.url.database}-wal")
        self._stop_event = threading.Event()

    def run(self) -> None:
        conn = self._engine.raw_connection()
        try:
            conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            while not self._stop_event.wait(CHECKPOINT_EVERY_S):
                self._checkpoint(conn)
            self._checkpoint(conn)
        finally:
            conn.close()

    def _checkpoint(self, conn: Any) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            if self._wal.exists() and self._wal.stat().st_size > WAL_RESTART_BYTES:
                conn.execute("PRAGMA wal_checkpoint(RESTART)")
        except sqlite3.Error as exc:  # busy or gone: the next round tries again
            log.debug("SQLite checkpoint did not finish: %s", exc)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _locked(exc: sqlite3.OperationalError) -> bool:
    """Tell SQLITE_BUSY / SQLITE_LOCKED (another writer holds the lock) from real errors."""
    return exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def _resolve(batch: list[Pending], results: list[store.Stored]) -> None:
    for (_, future), result in zip(batch, results, strict=True):
        if not future.done():
            future.set_result(result)


def _fail(batch: list[Pending], exc: BaseException) -> None:
    log.error("storing %d deliveries failed: %s", len(batch), _short(exc))
    for _, future in batch:
        if not future.done():
            future.set_exception(StorageUnavailable())


def _short(exc: BaseException) -> str:
    """Name an error in one line; database errors keep only their driver's first line."""
    origin = getattr(exc, "orig", None) or exc
    lines = str(origin).strip().splitlines()
    return f"{type(origin).__name__}: {lines[0] if lines else ''}"

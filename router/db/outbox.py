"""The outbox's claim, lease and record statements (router.work.outbox schedules them),
and an operator's retry.

A claim is a lease: the row stays `pending`, `claimed_by` names the performer holding it,
and `next_at` moves past the time one attempt can take (`LEASE`). No database lock is held
while the vendor is called (on SQLite that would stall ingest). Recording a result clears
`claimed_by`; a row waiting out a backoff has none, so a lease and a backoff are told apart.

A performer that dies mid-attempt (`kill -9`, the OOM killer) leaves its rows claimed.
They are taken back at once, not when the lease ends:

- SQLite serves one process, which holds the database file's lock (router.db.engine
  `hold_sqlite_file`): whatever is claimed when it starts was claimed by a process that
  is gone, so `release_all` releases it.
- PostgreSQL: each performer holds a session advisory lock for its lifetime (`Claimant`);
  the server drops it when the performer's connection dies with it. `release_orphans`
  releases the rows of claimants whose lock is gone.

Either way the repeat takes effect once: a released row has counted an attempt, so it is
no first try and the adapter looks for its earlier effect (assignee, marker, dedup_key).

Each item's actions are claimed in id order: see `claim`.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select, text, update

from router.db.engine import xact_lock
from router.db.pages import Watched, page_retried, record_outcomes
from router.db.tables import decisions, outbox

log = logging.getLogger("firstline.outbox")

LEASE = timedelta(minutes=2)  # longer than the quick tries of one action can take
CLAIM_LOCK = 0x666C6F  # "flo": the transaction advisory lock every claim takes
CLAIMANTS = 0x666C  # the first key of every performer's session advisory lock

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
    .values(next_at=bindparam("until"), attempts=outbox.c.attempts + 1,
            claimed_by=bindparam("me")).cte("leased")))
_LEASE = (update(outbox).where(outbox.c.id.in_(bindparam("row_ids", expanding=True)))
          .values(next_at=bindparam("until"), attempts=outbox.c.attempts + 1,
                  claimed_by=bindparam("me")))

# Built once. Done rows share their values, so they are one statement (per-row UPDATEs
# were most of the statements PostgreSQL ran at a steady 200 deliveries/s).
_DONE = (update(outbox).where(outbox.c.id.in_(bindparam("row_ids", expanding=True)))
         .values(status="done", done_at=bindparam("at"), last_error=None, claimed_by=None))
_WAIT = (update(outbox).where(outbox.c.id == bindparam("row_id"))
         .values(next_at=bindparam("at"), last_error=bindparam("error"), claimed_by=None))
_DEAD = (update(outbox).where(outbox.c.id == bindparam("row_id"))
         .values(status="dead", last_error=bindparam("error"), claimed_by=None))
_BACK = (update(outbox).where(outbox.c.id == bindparam("row_id"))
         .values(next_at=bindparam("at"), attempts=bindparam("attempts"), claimed_by=None))
_RELEASE_ALL = (update(outbox).where(outbox.c.status == "pending",
                                     outbox.c.claimed_by.is_not(None))
                .values(next_at=bindparam("now"), claimed_by=None))
_LIVE = ("SELECT objid::text FROM pg_locks WHERE locktype = 'advisory' AND classid = :c "
         "AND objsubid = 2 AND granted AND database = "
         "(SELECT oid FROM pg_database WHERE datname = current_database())")
_RELEASE_ORPHANS = text(
    "UPDATE outbox SET claimed_by = NULL, next_at = :now WHERE status = 'pending' "
    f"AND claimed_by IS NOT NULL AND claimed_by NOT IN ({_LIVE})")


@dataclass
class Outcomes:
    """What a performer learned, as the rows to update: done, waiting out a backoff, dead,
    and untouched (back to how they were before their claim); and what became of the
    pages and review tickets, for their escalations (router.db.pages)."""

    done: list[int] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)  # row_id, at, error
    dead: list[dict[str, Any]] = field(default_factory=list)  # row_id, error
    back: list[dict[str, Any]] = field(default_factory=list)  # row_id, at, attempts
    watched: list[Watched] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.done or self.waiting or self.dead or self.back)


def record(conn: Connection, outcomes: Outcomes, now: datetime) -> None:
    """Write what became of claimed rows, releasing their claims."""
    if outcomes.done:
        conn.execute(_DONE, {"row_ids": outcomes.done, "at": now})
    for stmt, params in ((_WAIT, outcomes.waiting), (_DEAD, outcomes.dead),
                         (_BACK, outcomes.back)):
        if params:
            conn.execute(stmt, params)
    if outcomes.watched:  # pages sent or dead, review tickets filed
        record_outcomes(conn, outcomes.watched, now)


def add_delivery_ids(conn: Connection, lines: list[dict[str, Any]]) -> None:
    """Add to each action's log line the id of the delivery its decision answered (none
    for a timer's decision)."""
    ids = {line["decision_id"] for line in lines}
    found = {decision_id: delivery_id for decision_id, delivery_id in conn.execute(
        select(decisions.c.id, decisions.c.delivery_id).where(decisions.c.id.in_(ids)))}
    for line in lines:
        line["delivery_id"] = found.get(line["decision_id"])


def claim(conn: Connection, now: datetime, want: int, me: str) -> list[Any]:
    """Lease up to `want` due actions for performer `me`, in id order, keeping each item's
    actions in order; return the rows as they were before the lease.

    A due action is skipped while an earlier action of its item is pending and not due:
    leased by another performer, or backing off. So an action in durable backoff (a 429
    with a long Retry-After, say) holds back the later actions of its item until it is
    done or dead; a done or dead action holds nothing back. Earlier actions that are due
    come first in the same batch. Claims take turns, so two cannot split an item between
    them: on PostgreSQL by a transaction advisory lock (SKIP LOCKED alone could skip an
    earlier row another claim has locked and take the later one), on SQLite by its write
    lock (the worker engine's BEGIN IMMEDIATE).
    """
    until = now + LEASE
    if conn.dialect.name == "postgresql":
        xact_lock(conn, CLAIM_LOCK)
        return list(conn.execute(_LEASE_AND_READ, {"now": now, "batch": want,
                                                    "until": until, "me": me}).all())
    rows = list(conn.execute(_CLAIMABLE, {"now": now, "batch": want}).all())
    if rows:
        conn.execute(_LEASE, {"row_ids": [r.id for r in rows], "until": until, "me": me})
    return rows


def release_all(conn: Connection, now: datetime) -> int:
    """Release every claimed row (SQLite, at start: its claimants are gone); return how
    many."""
    return int(conn.execute(_RELEASE_ALL, {"now": now}).rowcount)


def release_orphans(conn: Connection, now: datetime) -> int:
    """Release the rows whose claimant's advisory lock is gone (PostgreSQL); return how
    many."""
    return int(conn.execute(_RELEASE_ORPHANS, {"now": now, "c": CLAIMANTS}).rowcount)


class Claimant:
    """The name a performer leases rows under; on PostgreSQL also the session advisory
    lock that shows it alive, held on a connection of its own for the performer's life."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.id = str(secrets.randbelow(2**31 - 2) + 1)  # the lock's key: a positive int4
        self._conn: Connection | None = None

    def hold(self) -> None:
        """Take the lock, or check it is still held; after a lost connection, take it
        again (PostgreSQL; nothing to do on SQLite)."""
        if self.engine.dialect.name != "postgresql":
            return
        if self._conn is not None:
            try:
                self._conn.exec_driver_sql("SELECT 1")
                return
            except Exception:  # the server restarted, say: the lock went with it
                log.warning("lost the performer's lock connection; taking the lock again")
                self.close()
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            conn.execute(text("SELECT pg_advisory_lock(:c, :k)"),
                         {"c": CLAIMANTS, "k": int(self.id)})
        except Exception:
            conn.close()
            raise
        self._conn = conn

    def close(self) -> None:
        """Let the lock go (its connection closes): rows still claimed become orphans."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # already broken
                log.debug("closing the lock connection failed", exc_info=True)



class RetryRefused(ValueError):
    """The action cannot be retried by hand; the message says why, in one line."""


def retry_action(conn: Connection, action_id: int, now: datetime) -> None:
    """Make a dead (or waiting) action due now with a fresh count of attempts: what
    `firstline outbox retry ID` and the dashboard's retry button do.

    A done action took effect and a shadow one must never act; an action a performer
    holds right now is being tried: all three are refused.
    """
    row = conn.execute(select(outbox.c.status, outbox.c.claimed_by).where(
        outbox.c.id == action_id)).first()
    if row is None:
        raise RetryRefused(f"no action {action_id}")
    if row.status in ("done", "shadow"):
        raise RetryRefused(f"action {action_id} is {row.status}: nothing to retry")
    if row.claimed_by is not None:
        raise RetryRefused(f"action {action_id} is being performed now: wait for its result")
    conn.execute(update(outbox).where(outbox.c.id == action_id).values(
        status="pending", attempts=0, next_at=now, last_error=None))
    page_retried(conn, action_id)  # a page's escalation says it is pending again

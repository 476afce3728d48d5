"""Every table firstline keeps, in one place: what arrived, what was decided, what to do.

SQLAlchemy Core only: rows are plain tuples, and the same statements run on SQLite and
PostgreSQL. The schema itself is created by the Alembic migrations in
`router/db/migrations/`; `metadata` here must describe the same tables (a test compares
them).

- `inbox` holds every raw delivery exactly as it arrived, unique per (source, delivery
  id); the worker claims `pending` rows in id order and marks them `done` or `failed`.
- `items`, `decisions`, `timers`, `escalations`, `escalation_items` and `charges` record
  what was decided (router.db.ledger writes them in the worker's transaction). An
  escalation is `open` while its page counts as open, `resolved` when its items or its
  page resolved, and `closed` when its page never reached the CTO (a shadow-mode page
  after the switch to enforce, or a dead page action); `page_state` says which
  (router.db.pages keeps it in step with the performer).
  `charges` holds every hour counted against the CTO's weekly cap: CTO-owned work by its
  line's cost (one row per item and week) and each escalation by its page's
  acknowledged->resolved time (one row per escalation, `source` "page", 1h until known).
- `outbox` holds the actions to perform in the trackers (router.work.outbox).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    literal_column,
    text,
)

INBOX_STATUSES = ("pending", "done", "failed")
DELIVERY_ID_MAX = 255


class UTCDateTime(TypeDecorator[datetime]):
    """Store aware datetimes as UTC and read them back aware, on SQLite as on PostgreSQL.

    SQLite keeps no offset, so a naive value read back is UTC by construction; refusing
    naive input keeps local times from sneaking in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware value")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# BigInteger ids on PostgreSQL; SQLite only autoincrements an INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

inbox = Table(
    "inbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("delivery_id", String(DELIVERY_ID_MAX), nullable=False),
    Column("event_type", String(100), nullable=True),  # GitHub's X-GitHub-Event
    Column("headers", Text, nullable=False),  # JSON object of the non-secret headers
    Column("body", LargeBinary, nullable=False),  # the bytes as received
    Column("received_at", UTCDateTime, nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("error", Text, nullable=True),
    Column("processed_at", UTCDateTime, nullable=True),
    UniqueConstraint("source", "delivery_id"),
    CheckConstraint("status IN ('pending', 'done', 'failed')", name="status"),
    Index(None, "status", "id"),  # the worker's claim: oldest pending first
    Index(None, "source", "received_at"),  # the last delivery per source (dashboard)
)

items = Table(
    "items", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("state", Text, nullable=False),  # the newest WorkItem, as JSON
    Column("history", Text, nullable=False),  # router.history.history_to_json
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "item_id"),
)

decisions = Table(
    "decisions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("inbox_id", BigId, nullable=True, unique=True),  # one decision per delivery
    Column("timer_key", String(400), nullable=True, unique=True),  # one per timer firing
    Column("delivery_id", String(255), nullable=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=True),
    Column("item_key", String(255), nullable=True),
    Column("event_type", String(100), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("owner", String(100), nullable=True),
    Column("scope_line", Text, nullable=True),
    Column("severity", String(8), nullable=True),
    Column("triggers", Text, nullable=False),  # JSON list of trigger ids that fired
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("scope_hash", String(64), nullable=False),
    Column("event_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("cap_hours", Float, nullable=False, server_default="0"),
    Column("exception", Boolean, nullable=False, server_default="0"),
    Column("handed_back", Boolean, nullable=False, server_default="0"),
    Column("assigner", String(255), nullable=True),
    # Minutes from the item's creation, on the first decision that gave it a
    # first-response owner (router.core.model.Decision.owner_minutes).
    Column("owner_minutes", Float, nullable=True),
    # The item as the note saw it when deciding (migration 0013): the monthly review
    # groups the catch-all's work and unknown assigners' hand-backs by these.
    Column("project", String(255), nullable=True),
    Column("labels", Text, nullable=True),  # JSON list, sorted; NULL when none
    Column("reporter", String(255), nullable=True),
    Index(None, "event_at"),
    Index(None, "source", "item_key"),
    # The dashboard's reads (migration 0008): newest of an outcome, an item's decisions,
    # the week's hand-backs and deferrals (partial: only those rows are indexed).
    Index(None, "outcome", "id"),
    Index(None, "source", "item_id"),
    Index("ix_decisions_handed_back_event_at", "event_at",
          sqlite_where=text("handed_back"), postgresql_where=text("handed_back")),
    Index("ix_decisions_deferred_event_at", "event_at",
          sqlite_where=text("outcome = 'defer'"), postgresql_where=text("outcome = 'defer'")),
    # The month's figures (router.reviews.figures) read these columns only: with them in
    # the index, the monthly review scans the index, never the rows and their evidence.
    Index("ix_decisions_month", "event_at", "outcome", "source", "scope_line", "item_id",
          "handed_back", "exception", "cap_hours", "assigner", "owner", "owner_minutes",
          "item_key", "triggers", "project", "labels", "reporter"),
)

timers = Table(
    "timers", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("armed", Boolean, nullable=False),
    UniqueConstraint("source", "item_id", "trigger_id"),
    Index(None, "armed", "due_at"),
)

escalations = Table(
    "escalations", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(400), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # open | resolved | closed
    Column("decision_id", BigId, nullable=False),
    Column("paged_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    # What became of the page (router.core.ledger.PAGE_STATES) and when PagerDuty took it.
    Column("page_state", String(16), nullable=False, server_default="pending"),
    Column("page_sent_at", UTCDateTime, nullable=True),
    Column("closed_at", UTCDateTime, nullable=True),  # closed: its page was never sent
    # The review ticket (router.reviews.filing): its outbox action, then what it created.
    Column("review_action_id", BigId, nullable=True),
    Column("review_key", String(255), nullable=True),
    Column("review_url", Text, nullable=True),
    # Counts the row's updates, each statement's own (router.reviews.kept: a kept
    # monthly review tells by it that an escalation changed).
    Column("revision", Integer, nullable=False, server_default="0",
           onupdate=literal_column("revision + 1")),
    Index(None, "dedup_key", "status"),
    Index(None, "paged_at"),
)

escalation_items = Table(
    "escalation_items", metadata,
    Column("escalation_id", BigId, primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("item_key", String(255), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
)

charges = Table(
    "charges", metadata,
    Column("week_start", Date, primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("hours", Float, nullable=False),
    Column("decision_id", BigId, nullable=False),
)


OUTBOX_STATUSES = ("pending", "done", "dead", "shadow")

outbox = Table(
    "outbox", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("decision_id", BigId, nullable=False),
    Column("type", String(32), nullable=False),
    Column("target", Text, nullable=False),  # adapters.base.Target as JSON
    Column("item", String(300), nullable=True),  # "<source>:<item id>" of the target
    Column("action", Text, nullable=False),  # router.model.Action.as_dict() as JSON
    Column("status", String(16), nullable=False),  # pending | done | dead | shadow
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", UTCDateTime, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime, nullable=True),
    # The performer holding the row's lease (router.db.outbox); NULL when not leased.
    Column("claimed_by", String(64), nullable=True),
    Index(None, "status", "next_at"),
    Index(None, "decision_id"),
    Index(None, "item", "status", "id"),  # an item's earlier pending actions (router.db.outbox)
    Index(None, "status", "id"),  # the claim: pending actions in id order (router.db.outbox)
)

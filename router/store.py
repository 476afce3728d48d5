"""The database tables and the small queries run against them.

SQLAlchemy Core only: rows are plain tuples, and the same statements run on SQLite and
PostgreSQL. The schema itself is created by the Alembic migrations in
`router/migrations/`; `metadata` here must describe the same tables (a test compares them).

`inbox` holds every raw delivery exactly as it arrived, unique per (source, delivery id);
the worker claims `pending` rows in id order and marks them `done` or `failed`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Connection,
    DateTime,
    Dialect,
    Index,
    Insert,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite

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
)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One raw delivery on its way into the inbox."""

    source: str
    delivery_id: str
    event_type: str | None
    headers: str
    body: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Stored:
    """What became of one delivery: a new inbox row, or a repeat of a stored one."""

    status: Literal["accepted", "duplicate"]
    id: int | None = None


def _insert_ignoring_duplicates(dialect: str) -> Insert:
    """Build an INSERT that skips (source, delivery_id) pairs already stored."""
    if dialect == "postgresql":
        pg = postgresql.insert(inbox).on_conflict_do_nothing(
            index_elements=["source", "delivery_id"]
        )
        return pg.returning(inbox.c.id, inbox.c.source, inbox.c.delivery_id)
    lite = sqlite.insert(inbox).on_conflict_do_nothing(index_elements=["source", "delivery_id"])
    return lite.returning(inbox.c.id, inbox.c.source, inbox.c.delivery_id)


def insert_deliveries(conn: Connection, deliveries: Sequence[Delivery]) -> list[Stored]:
    """Insert many deliveries in the caller's transaction; tell each one's fate, in order.

    A delivery id seen earlier in the same batch counts as a duplicate too, so concurrent
    retries of one delivery store it once. The caller commits: nothing is acknowledged
    before that.
    """
    first: dict[tuple[str, str], int] = {}
    rows: list[dict[str, Any]] = []
    for index, d in enumerate(deliveries):
        key = (d.source, d.delivery_id)
        if key not in first:
            first[key] = index
            rows.append(
                {
                    "source": d.source, "delivery_id": d.delivery_id,
                    "event_type": d.event_type, "headers": d.headers, "body": d.body,
                    "received_at": d.received_at,
                }
            )
    ids: dict[tuple[str, str], int] = {}
    if rows:
        stmt = _insert_ignoring_duplicates(conn.dialect.name)
        for row_id, source, delivery_id in conn.execute(stmt, rows):
            ids[(source, delivery_id)] = row_id
    out: list[Stored] = []
    for index, d in enumerate(deliveries):
        key = (d.source, d.delivery_id)
        new_id = ids.get(key)
        if new_id is not None and first[key] == index:
            out.append(Stored("accepted", new_id))
        else:
            out.append(Stored("duplicate"))
    return out


def insert_delivery(conn: Connection, delivery: Delivery) -> Stored:
    """Insert one delivery in the caller's transaction (see `insert_deliveries`)."""
    return insert_deliveries(conn, [delivery])[0]


def count_inbox(conn: Connection) -> list[tuple[str, str, int]]:
    """Count stored deliveries by source and status, for /metrics."""
    stmt = (
        select(inbox.c.source, inbox.c.status, func.count())
        .group_by(inbox.c.source, inbox.c.status)
        .order_by(inbox.c.source, inbox.c.status)
    )
    return [(source, status, count) for source, status, count in conn.execute(stmt)]

"""Store raw deliveries in the inbox: one multi-row INSERT that skips repeats.

Both the webhook path (router.db.group_commit) and tests write through `plan_insert`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from sqlalchemy import Connection, func, select

from router.db.tables import inbox


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


_INSERT_COLUMNS = ("source", "delivery_id", "event_type", "headers", "body", "received_at")
# Rows per INSERT: 6 parameters each stays far below SQLite's 32766 and PostgreSQL's 65535.
INSERT_CHUNK = 500


@dataclass(frozen=True, slots=True)
class InsertPlan:
    """Driver SQL that stores a batch of deliveries, and how to read back each one's fate.

    The ingest hot path runs these statements directly on the driver: SQLAlchemy's
    compiled executemany cost twice the CPU per row (measured on SQLite with 13 KB GitHub
    bodies), and PostgreSQL's writer is an async psycopg connection (router.http.webhooks).
    """

    statements: list[tuple[str, tuple[Any, ...]]]
    deliveries: Sequence[Delivery]
    first: dict[tuple[str, str], int]  # (source, delivery id) -> index of its first copy

    def outcome(self, returned: Iterable[Sequence[Any]]) -> list[Stored]:
        """Match the RETURNING rows (id, source, delivery_id) to the deliveries, in order.

        A delivery id seen earlier in the same batch counts as a duplicate too, so
        concurrent retries of one delivery store it once.
        """
        ids = {(source, delivery_id): row_id for row_id, source, delivery_id in returned}
        out: list[Stored] = []
        for index, d in enumerate(self.deliveries):
            key = (d.source, d.delivery_id)
            new_id = ids.get(key)
            if new_id is not None and self.first[key] == index:
                out.append(Stored("accepted", new_id))
            else:
                out.append(Stored("duplicate"))
        return out


def plan_insert(dialect: str, deliveries: Sequence[Delivery]) -> InsertPlan:
    """Plan multi-row INSERTs that skip (source, delivery_id) pairs already stored."""
    marker = "?" if dialect == "sqlite" else "%s"
    first: dict[tuple[str, str], int] = {}
    params: list[Any] = []
    for index, d in enumerate(deliveries):
        key = (d.source, d.delivery_id)
        if key not in first:
            first[key] = index
            params += (d.source, d.delivery_id, d.event_type, d.headers, d.body,
                       _bind_time(dialect, d.received_at))
    width = len(_INSERT_COLUMNS)
    statements = []
    for start in range(0, len(params), INSERT_CHUNK * width):
        chunk = tuple(params[start : start + INSERT_CHUNK * width])
        statements.append((_insert_sql(marker, len(chunk) // width), chunk))
    return InsertPlan(statements, deliveries, first)


@cache
def _insert_sql(marker: str, rows: int) -> str:
    one = "(" + ", ".join([marker] * len(_INSERT_COLUMNS)) + ")"
    return (
        f"INSERT INTO {inbox.name} ({', '.join(_INSERT_COLUMNS)}) VALUES {', '.join([one] * rows)}"
        " ON CONFLICT (source, delivery_id) DO NOTHING RETURNING id, source, delivery_id"
    )


def _bind_time(dialect: str, value: datetime) -> datetime | str:
    """Bind a timestamp the way `UTCDateTime` would (driver SQL skips type processing)."""
    utc = value.astimezone(UTC)
    if dialect == "sqlite":
        return utc.replace(tzinfo=None).isoformat(" ", "microseconds")
    return utc


def insert_deliveries(conn: Connection, deliveries: Sequence[Delivery]) -> list[Stored]:
    """Insert deliveries in the caller's transaction; tell each one's fate, in order.

    The caller commits: nothing may be acknowledged before that.
    """
    plan = plan_insert(conn.dialect.name, deliveries)
    returned = [row for sql, params in plan.statements for row in conn.exec_driver_sql(sql, params)]
    return plan.outcome(returned)


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

"""Record each item's time to owner on the decision that first gave it one.

`decisions.owner_minutes` holds the minutes from an item's creation to the first
decision that left it with a first-response owner other than the CTO; the monthly review
reads its median and 90th percentile per source. Items remember that they were owned
(`"owned"` in their history), so later decisions do not count again.

Existing rows are backfilled here in Python (the same code on SQLite and PostgreSQL):
per item, the first decision by event time that handed the item on (`reassign`), found a
person other than the CTO already on it (`keep` "Already with ..."), or escalated and
gave it to its owner (an assign action) or found it assigned. Earlier revisions did not
store enough to tell an escalation of CTO-owned work assigned to the CTO from one kept
by the team, so the backfill counts both: new decisions tell them apart.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
CHUNK = 1000  # rows read per round of the backfill

# The tables as this revision knows them: the migration must not follow later code.
DECISIONS = sa.table(
    "decisions", sa.column("id", BIG_ID), sa.column("source", sa.String(16)),
    sa.column("item_id", sa.String(255)), sa.column("outcome", sa.String(16)),
    sa.column("reason", sa.Text()), sa.column("actions", sa.Text()),
    sa.column("evidence", sa.Text()), sa.column("event_at", TIME),
    sa.column("owner_minutes", sa.Float()))
ITEMS = sa.table("items", sa.column("id", BIG_ID), sa.column("source", sa.String(16)),
                 sa.column("item_id", sa.String(255)), sa.column("history", sa.Text()))
HANDS_ON = {"assign", "reassign_incident"}


def upgrade() -> None:
    op.add_column("decisions", sa.Column("owner_minutes", sa.Float(), nullable=True))
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("owner_minutes")


def _backfill() -> None:
    conn = op.get_bind()
    first = _first_owned(conn)
    if not first:
        return
    minutes = []
    for row in _items(conn):
        me = (row.source, row.item_id)
        if me not in first:
            continue
        history = json.loads(row.history)
        created = _aware(history.get("created_at"))
        at, decision_id = first[me]
        if created is not None:
            minutes.append({"b_id": decision_id,
                            "b_minutes": max(0.0, (at - created).total_seconds() / 60.0)})
        history["owned"] = True
        conn.execute(sa.update(ITEMS).where(ITEMS.c.id == row.id)
                     .values(history=json.dumps(history)))
    if minutes:
        conn.execute(sa.update(DECISIONS).where(DECISIONS.c.id == sa.bindparam("b_id"))
                     .values(owner_minutes=sa.bindparam("b_minutes")), minutes)


def _first_owned(conn: Any) -> dict[tuple[str, str], tuple[datetime, int]]:
    """Return, per item, the event time and id of its first owning decision."""
    first: dict[tuple[str, str], tuple[datetime, int]] = {}
    last = 0
    while True:
        rows = conn.execute(
            sa.select(DECISIONS.c.id, DECISIONS.c.source, DECISIONS.c.item_id,
                      DECISIONS.c.outcome, DECISIONS.c.reason, DECISIONS.c.actions,
                      DECISIONS.c.evidence, DECISIONS.c.event_at)
            .where(DECISIONS.c.id > last, DECISIONS.c.item_id.is_not(None),
                   DECISIONS.c.outcome.in_(("reassign", "keep", "escalate")))
            .order_by(DECISIONS.c.id).limit(CHUNK)).all()
        if not rows:
            return first
        last = rows[-1].id
        for row in rows:
            if not _owning(row):
                continue
            at = _aware(row.event_at)
            me = (row.source, row.item_id)
            if at is not None and (me not in first or (at, row.id) < first[me]):
                first[me] = (at, row.id)


def _owning(row: Any) -> bool:
    if row.outcome == "reassign":
        return True
    if row.outcome == "keep":
        return str(row.reason).startswith("Already with")
    actions = json.loads(row.actions or "[]")
    evidence = json.loads(row.evidence or "{}")
    return any(a.get("type") in HANDS_ON for a in actions) or bool(evidence.get("assignees"))


def _items(conn: Any) -> Any:
    last = 0
    while True:
        rows = conn.execute(sa.select(ITEMS.c.id, ITEMS.c.source, ITEMS.c.item_id,
                                      ITEMS.c.history)
                            .where(ITEMS.c.id > last).order_by(ITEMS.c.id).limit(CHUNK)).all()
        if not rows:
            return
        last = rows[-1].id
        yield from rows


def _aware(value: Any) -> datetime | None:
    """Read a stored time (text on SQLite, naive UTC there) as an aware UTC datetime."""
    if value is None:
        return None
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment

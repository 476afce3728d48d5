"""Name each outbox action's item, so performers claim an item's actions in order.

`item` is "<source>:<item id>" of the action's target; existing rows get it from their
`target` JSON, read and written here in Python so the same code runs on SQLite and
PostgreSQL. The index answers the claim's question: is an earlier action of this item
still pending?

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 1000  # rows read and written per round of the backfill

# The outbox as this revision knows it: the migration must not follow later code.
OUTBOX = sa.table("outbox", sa.column("id", BIG_ID), sa.column("target", sa.Text()),
                  sa.column("item", sa.String(300)))


def upgrade() -> None:
    op.add_column("outbox", sa.Column("item", sa.String(300), nullable=True))
    op.create_index("ix_outbox_item_status_id", "outbox", ["item", "status", "id"])
    _backfill()


def downgrade() -> None:
    op.drop_index("ix_outbox_item_status_id", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("item")


def _backfill() -> None:
    """Fill `item` of every existing row from its target, a chunk of rows at a time."""
    conn = op.get_bind()
    write = (sa.update(OUTBOX).where(OUTBOX.c.id == sa.bindparam("b_id"))
             .values(item=sa.bindparam("b_item")))
    last = 0
    while True:
        rows = conn.execute(sa.select(OUTBOX.c.id, OUTBOX.c.target)
                            .where(OUTBOX.c.id > last).order_by(OUTBOX.c.id)
                            .limit(CHUNK)).all()
        if not rows:
            return
        last = rows[-1].id
        named = [{"b_id": row.id, "b_item": item} for row in rows
                 if (item := _item(row.target)) is not None]
        if named:
            conn.execute(write, named)


def _item(target: str) -> str | None:
    """Return "<source>:<id>" of a stored target, or None if it does not name both."""
    try:
        data = json.loads(target)
    except ValueError:
        return None
    if not isinstance(data, dict) or not data.get("source") or data.get("id") is None:
        return None
    return f"{data['source']}:{data['id']}"

"""Keep on each decision the item's project, labels and reporter as decided; count each
escalation's changes.

The monthly review groups the catch-all line's work by project and label, and counts a
hand-back whose assigner is unknown under the item's reporter. It read those from the
item's newest state, so a label added in December changed November's review. Read from
the decision instead, they are what the scope note saw when it routed the work, and a
past month's records stop changing once nothing more is decided in it: the review of
such a month can be kept until they do (router.reviews.kept). `escalations.revision`
counts every update of an escalation (its status, acknowledgement, resolution), so a
kept review can tell that one changed.

Existing decisions are given their item's newest project, labels and reporter (what the
review showed before), one item at a time in Python, the same on SQLite and PostgreSQL.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03
"""

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
CHUNK = 1000  # items read per round of the backfill

# The tables as this revision knows them: the migration must not follow later code.
DECISIONS = sa.table(
    "decisions", sa.column("source", sa.String(16)), sa.column("item_id", sa.String(255)),
    sa.column("project", sa.String(255)), sa.column("labels", sa.Text()),
    sa.column("reporter", sa.String(255)))
ITEMS = sa.table("items", sa.column("id", BIG_ID), sa.column("source", sa.String(16)),
                 sa.column("item_id", sa.String(255)), sa.column("state", sa.Text()))


MONTH_INDEX = ["event_at", "outcome", "source", "scope_line", "item_id", "handed_back",
               "exception", "cap_hours", "assigner", "owner", "owner_minutes", "item_key",
               "triggers"]
FACTS = ["project", "labels", "reporter"]


def upgrade() -> None:
    with op.batch_alter_table("decisions") as batch:
        batch.add_column(sa.Column("project", sa.String(255), nullable=True))
        batch.add_column(sa.Column("labels", sa.Text(), nullable=True))
        batch.add_column(sa.Column("reporter", sa.String(255), nullable=True))
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("revision", sa.Integer(), nullable=False,
                                   server_default="0"))
    # The review reads the new columns from the month index too; rebuilt after the
    # backfill, which then updates no index.
    op.drop_index("ix_decisions_month", table_name="decisions")
    _backfill()
    op.create_index("ix_decisions_month", "decisions", [*MONTH_INDEX, *FACTS])


def downgrade() -> None:
    op.drop_index("ix_decisions_month", table_name="decisions")
    op.create_index("ix_decisions_month", "decisions", MONTH_INDEX)
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("revision")
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("reporter")
        batch.drop_column("labels")
        batch.drop_column("project")


def _backfill() -> None:
    conn = op.get_bind()
    stmt = (sa.update(DECISIONS)
            .where(DECISIONS.c.source == sa.bindparam("b_source"),
                   DECISIONS.c.item_id == sa.bindparam("b_item_id"))
            .values(project=sa.bindparam("b_project"), labels=sa.bindparam("b_labels"),
                    reporter=sa.bindparam("b_reporter")))
    for chunk in _item_chunks(conn):
        facts = []
        for row in chunk:
            state = json.loads(row.state) if row.state else {}
            labels = sorted(state.get("labels") or ())
            facts.append({"b_source": row.source, "b_item_id": row.item_id,
                          "b_project": state.get("project"),
                          "b_labels": json.dumps(labels, separators=(",", ":")) if labels else None,
                          "b_reporter": state.get("reporter")})
        conn.execute(stmt, facts)


def _item_chunks(conn: Any) -> Iterator[list[Any]]:
    last = 0
    while True:
        rows = conn.execute(sa.select(ITEMS.c.id, ITEMS.c.source, ITEMS.c.item_id,
                                      ITEMS.c.state)
                            .where(ITEMS.c.id > last).order_by(ITEMS.c.id).limit(CHUNK)).all()
        if not rows:
            return
        last = rows[-1].id
        yield rows

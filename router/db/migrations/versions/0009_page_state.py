"""Give each escalation its page's real state, and room for its review ticket.

`page_state` is what became of the page: `shadow` (never sent: shadow mode), `pending`,
`sent` (with `page_sent_at`) or `dead`. Existing rows take it from their page action in
the outbox; an open escalation whose page died is closed (`closed_at`), as the service
now does when a page action dies. Open shadow-mode escalations stay open: the first
batch decided under an enforce-mode note closes them (router.db.ledger).

`review_action_id`, `review_key` and `review_url` name the review ticket's outbox action
and, once filed, the ticket.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22
"""

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
CHUNK = 500
# The outbox's status -> the page's state.
STATES = {"shadow": "shadow", "pending": "pending", "done": "sent", "dead": "dead"}

# The tables as this revision knows them: the migration must not follow later code.
ESCALATIONS = sa.table(
    "escalations", sa.column("id", BIG_ID), sa.column("dedup_key", sa.String(400)),
    sa.column("status", sa.String(16)), sa.column("decision_id", BIG_ID),
    sa.column("page_state", sa.String(16)), sa.column("page_sent_at", TIME),
    sa.column("closed_at", TIME))
OUTBOX = sa.table(
    "outbox", sa.column("id", BIG_ID), sa.column("decision_id", BIG_ID),
    sa.column("type", sa.String(32)), sa.column("status", sa.String(16)),
    sa.column("done_at", TIME))


def upgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        batch.add_column(sa.Column("page_state", sa.String(16), nullable=False,
                                   server_default="pending"))
        batch.add_column(sa.Column("page_sent_at", TIME, nullable=True))
        batch.add_column(sa.Column("closed_at", TIME, nullable=True))
        batch.add_column(sa.Column("review_action_id", BIG_ID, nullable=True))
        batch.add_column(sa.Column("review_key", sa.String(255), nullable=True))
        batch.add_column(sa.Column("review_url", sa.Text(), nullable=True))
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("escalations") as batch:
        for name in ("review_url", "review_key", "review_action_id", "closed_at",
                     "page_sent_at", "page_state"):
            batch.drop_column(name)


def _backfill() -> None:
    """Set each existing escalation's page state from its page action, a chunk at a time.

    A page action no longer stored leaves the state `sent`: what firstline assumed of
    every page before this revision.
    """
    conn = op.get_bind()
    now = datetime.now(UTC)
    last = 0
    while True:
        rows = conn.execute(sa.select(ESCALATIONS.c.id, ESCALATIONS.c.status,
                                      ESCALATIONS.c.decision_id)
                            .where(ESCALATIONS.c.id > last).order_by(ESCALATIONS.c.id)
                            .limit(CHUNK)).all()
        if not rows:
            return
        last = rows[-1].id
        pages = {r.decision_id: r for r in conn.execute(
            sa.select(OUTBOX.c.decision_id, OUTBOX.c.status, OUTBOX.c.done_at)
            .where(OUTBOX.c.type == "page",
                   OUTBOX.c.decision_id.in_([r.decision_id for r in rows])))}
        for row in rows:
            page = pages.get(row.decision_id)
            state = STATES.get(page.status, "sent") if page is not None else "sent"
            values: dict[str, object] = {"page_state": state}
            if state == "sent" and page is not None:
                values["page_sent_at"] = page.done_at
            if state == "dead" and row.status == "open":
                values.update(status="closed", closed_at=now)
            conn.execute(sa.update(ESCALATIONS).where(ESCALATIONS.c.id == row.id)
                         .values(**values))

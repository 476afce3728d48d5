"""Record decisions: items, decisions, timers, escalations (with their items), charges.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("source", "item_id", name="uq_items_source_item_id"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("inbox_id", BIG_ID, nullable=True),
        sa.Column("timer_key", sa.String(400), nullable=True),
        sa.Column("delivery_id", sa.String(255), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(255), nullable=True),
        sa.Column("item_key", sa.String(255), nullable=True),
        sa.Column("event_type", sa.String(100), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("owner", sa.String(100), nullable=True),
        sa.Column("scope_line", sa.Text(), nullable=True),
        sa.Column("severity", sa.String(8), nullable=True),
        sa.Column("triggers", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", sa.Text(), nullable=False),
        sa.Column("actions", sa.Text(), nullable=False),
        sa.Column("scope_hash", sa.String(64), nullable=False),
        sa.Column("event_at", TIME, nullable=False),
        sa.Column("decided_at", TIME, nullable=False),
        sa.Column("cap_hours", sa.Float(), nullable=False, server_default="0"),
        sa.Column("exception", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("handed_back", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("assigner", sa.String(255), nullable=True),
        sa.UniqueConstraint("inbox_id", name="uq_decisions_inbox_id"),
        sa.UniqueConstraint("timer_key", name="uq_decisions_timer_key"),
    )
    op.create_index("ix_decisions_event_at", "decisions", ["event_at"])
    op.create_index("ix_decisions_source_item_key", "decisions", ["source", "item_key"])
    op.create_table(
        "timers",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("item_id", sa.String(255), nullable=False),
        sa.Column("trigger_id", sa.String(100), nullable=False),
        sa.Column("due_at", TIME, nullable=False),
        sa.Column("armed", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("source", "item_id", "trigger_id",
                            name="uq_timers_source_item_id_trigger_id"),
    )
    op.create_index("ix_timers_armed_due_at", "timers", ["armed", "due_at"])
    op.create_table(
        "escalations",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(400), nullable=False),
        sa.Column("trigger_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decision_id", BIG_ID, nullable=False),
        sa.Column("paged_at", TIME, nullable=False),
        sa.Column("acknowledged_at", TIME, nullable=True),
        sa.Column("resolved_at", TIME, nullable=True),
    )
    op.create_index("ix_escalations_dedup_key_status", "escalations", ["dedup_key", "status"])
    op.create_index("ix_escalations_paged_at", "escalations", ["paged_at"])
    op.create_table(
        "escalation_items",
        sa.Column("escalation_id", BIG_ID, primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("item_id", sa.String(255), primary_key=True),
        sa.Column("item_key", sa.String(255), nullable=False),
        sa.Column("open", sa.Boolean(), nullable=False),
        sa.Column("joined_at", TIME, nullable=False),
    )
    op.create_table(
        "charges",
        sa.Column("week_start", sa.Date(), primary_key=True),
        sa.Column("source", sa.String(16), primary_key=True),
        sa.Column("item_id", sa.String(255), primary_key=True),
        sa.Column("hours", sa.Float(), nullable=False),
        sa.Column("decision_id", BIG_ID, nullable=False),
    )


def downgrade() -> None:
    for table in ("charges", "escalation_items", "escalations", "timers", "decisions", "items"):
        op.drop_table(table)

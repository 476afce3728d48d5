"""Create the inbox: every raw delivery as received, unique per source and delivery id.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("delivery_id", sa.String(255), nullable=False),
        sa.Column("event_type", sa.String(100), nullable=True),
        sa.Column("headers", sa.Text(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_inbox"),
        sa.UniqueConstraint("source", "delivery_id", name="uq_inbox_source_delivery_id"),
        sa.CheckConstraint(
            "status IN ('pending', 'done', 'failed')", name="ck_inbox_status"
        ),
    )
    op.create_index("ix_inbox_status_id", "inbox", ["status", "id"])
    _compress_bodies_with_lz4()


def _compress_bodies_with_lz4() -> None:
    """Store bodies lz4-compressed on PostgreSQL 14+ built with lz4.

    PostgreSQL compresses large values with pglz by default, which was the largest cost
    of an insert in bench/ingest.py; lz4 is several times faster and nearly as small.
    """
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    supported = bind.exec_driver_sql(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    ).scalar()
    if supported:
        op.execute("ALTER TABLE inbox ALTER COLUMN body SET COMPRESSION lz4")


def downgrade() -> None:
    op.drop_index("ix_inbox_status_id", table_name="inbox")
    op.drop_table("inbox")

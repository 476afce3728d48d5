"""Name the performer that holds each leased outbox row (`claimed_by`).

A lease used to be only `next_at` pushed two minutes ahead, so after a `kill -9` the
actions a performer had claimed waited out those two minutes. With the claimant named, a
starting process (SQLite) or any performer (PostgreSQL, when the claimant's advisory lock
is gone) takes them back at once. A row waiting out a backoff has no claimant.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("claimed_by")

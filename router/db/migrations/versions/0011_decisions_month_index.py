"""Index the columns the monthly review groups on, so it never reads the decisions' rows.

A decision row carries its evidence and actions (a kilobyte or more); the review only
needs its time, outcome, source, scope line, item, flags, hours and people. With them in
one index led by `event_at`, SQLite answers the month's figures from the index alone and
PostgreSQL with index-only scans (bench/report.py).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ["event_at", "outcome", "source", "scope_line", "item_id", "handed_back",
           "exception", "cap_hours", "assigner", "owner", "owner_minutes", "item_key"]


def upgrade() -> None:
    op.create_index("ix_decisions_month", "decisions", COLUMNS)


def downgrade() -> None:
    op.drop_index("ix_decisions_month", table_name="decisions")

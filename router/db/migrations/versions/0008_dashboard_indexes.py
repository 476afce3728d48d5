"""dashboard_indexes: the indexes the dashboard's and the read API's queries walk.

Measured on a month of 50,000 decisions (bench/pages.py, SQLite):

- inbox (source, received_at): the last delivery per source, 700 ms -> 1 ms;
- decisions (outcome, id): the newest decisions of an outcome, 98 ms -> 1 ms;
- decisions (source, item_id): decisions about the items a search found, 185-230 ms ->
  60-70 ms;
- decisions (event_at) where handed_back, and where outcome = 'defer': the week's
  hand-backs and deferrals, 30-70 ms -> 2 ms; partial, so the worker's inserts of the
  other decisions do not maintain them.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HANDED_BACK = sa.text("handed_back")
DEFERRED = sa.text("outcome = 'defer'")


def upgrade() -> None:
    op.create_index("ix_inbox_source_received_at", "inbox", ["source", "received_at"])
    op.create_index("ix_decisions_outcome_id", "decisions", ["outcome", "id"])
    op.create_index("ix_decisions_source_item_id", "decisions", ["source", "item_id"])
    op.create_index("ix_decisions_handed_back_event_at", "decisions", ["event_at"],
                    sqlite_where=HANDED_BACK, postgresql_where=HANDED_BACK)
    op.create_index("ix_decisions_deferred_event_at", "decisions", ["event_at"],
                    sqlite_where=DEFERRED, postgresql_where=DEFERRED)


def downgrade() -> None:
    for name, table in (("ix_decisions_deferred_event_at", "decisions"),
                        ("ix_decisions_handed_back_event_at", "decisions"),
                        ("ix_decisions_source_item_id", "decisions"),
                        ("ix_decisions_outcome_id", "decisions"),
                        ("ix_inbox_source_received_at", "inbox")):
        op.drop_index(name, table_name=table)

"""What an operator may do to the outbox by hand: put an action back in line.

`firstline outbox retry ID` and the dashboard's retry button both call `retry_action`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from router.db.tables import outbox


class RetryRefused(ValueError):
    """The action cannot be retried; the message says why, in one line."""


def retry_action(conn: Connection, action_id: int, now: datetime) -> None:
    """Make a dead (or waiting) action due now with a fresh count of attempts.

    A done action took effect and a shadow one must never act: both are refused.
    """
    row = conn.execute(select(outbox.c.status).where(outbox.c.id == action_id)).first()
    if row is None:
        raise RetryRefused(f"no action {action_id}")
    if row.status in ("done", "shadow"):
        raise RetryRefused(f"action {action_id} is {row.status}: nothing to retry")
    conn.execute(update(outbox).where(outbox.c.id == action_id).values(
        status="pending", attempts=0, next_at=now, last_error=None))

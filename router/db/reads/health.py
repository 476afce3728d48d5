"""The service's health as the database shows it: backlog, dead actions, last deliveries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from router.core.model import SOURCES
from router.db.tables import inbox, outbox


def backlog(conn: Connection) -> int:
    """Count the stored deliveries not decided yet."""
    return int(conn.execute(select(func.count()).where(inbox.c.status == "pending"))
               .scalar_one())


def count_dead(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).where(outbox.c.status == "dead"))
               .scalar_one())


def dead_actions(conn: Connection, limit: int = 20) -> list[Any]:
    """Return the oldest dead actions (id, type, target, attempts, last_error, next_at)."""
    return list(conn.execute(
        select(outbox.c.id, outbox.c.type, outbox.c.target, outbox.c.attempts,
               outbox.c.last_error, outbox.c.next_at, outbox.c.decision_id)
        .where(outbox.c.status == "dead").order_by(outbox.c.id).limit(limit)).all())


def last_deliveries(conn: Connection) -> dict[str, datetime | None]:
    """Return when each source's newest delivery arrived (None: never)."""
    out: dict[str, datetime | None] = {}
    for source in SOURCES:  # one index lookup each, not a scan of the inbox
        out[source] = conn.execute(select(func.max(inbox.c.received_at)).where(
            inbox.c.source == source)).scalar()
    return out


def readiness_detail(engine: Engine, newer: Sequence[str] = ()) -> dict[str, Any]:
    """Return the backlog and the dead actions, for /readyz; and, when the database holds
    migrations `newer` than this code (a rolling upgrade under way), a line saying so."""
    with engine.connect() as conn:
        pending = backlog(conn)
        dead = dead_actions(conn)
    detail: dict[str, Any] = {
        "backlog": pending,
        "dead_actions": [{"id": r.id, "type": r.type, "error": r.last_error} for r in dead]}
    if newer:
        detail["migrations"] = (f"the database is ahead of this release (revision "
                                f"{', '.join(newer)}, applied by a newer one): still ready")
    return detail

"""The retention job: prune what FIRSTLINE_RETENTION_DAYS no longer keeps (router.db.prune),
hourly, in the worker's process (router.work.periodic). On PostgreSQL one worker at a time
prunes: the others find its session lock taken and skip their turn."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import Engine

from router.db.engine import try_session_lock
from router.db.prune import prune
from router.settings import Settings

log = logging.getLogger("firstline.retention")

EVERY_S = 3600.0
LOCK = 0x666C0101  # the advisory lock of the job


def retention(engine: Engine, settings: Settings) -> None:
    """Prune once, unless retention is off or another worker is pruning."""
    days = settings.retention_days
    if not days:
        return
    with try_session_lock(engine, LOCK) as held:
        if not held:
            return
        done = prune(engine, days, datetime.now(UTC))
    if done.deliveries or done.actions:
        log.info("retention: deleted %d deliveries and %d finished actions older than %s "
                 "(%d days); kept %d deliveries and %d actions that open or recent "
                 "escalations need", done.deliveries, done.actions, done.cutoff.date(), days,
                 done.kept_deliveries, done.kept_actions)

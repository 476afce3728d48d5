"""Retention: delete raw deliveries and finished outbox actions older than
FIRSTLINE_RETENTION_DAYS, in small batches (`firstline db prune`, and hourly in the worker).

What goes: inbox rows received before the cutoff that are decided or failed (a pending
one is never deleted), and outbox actions `done` or `shadow` that were finished (done) or
made (shadow) before it. Decisions, escalations, items and their timelines stay: the
reviews and reports read those, not the raw deliveries.

What stays although old — what an escalation still needs: the deliveries decided about
an item of an escalation that is open, or was resolved within the retention period (its
review may still be written), and the finished actions on such an item. `replay --from-db`
therefore sees the last RETENTION_DAYS of deliveries plus those.

Each batch is its own short transaction (`BATCH` rows, chosen in id order), so the
worker and ingest, SQLite's other writers, wait for one batch at most.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, Table, delete, func, or_, select, tuple_

from router.db.engine import writer_turn
from router.db.tables import decisions, escalation_items, escalations, inbox, outbox

BATCH = 500


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune deleted (or, dry, would delete) and what it kept for escalations."""

    cutoff: datetime
    deliveries: int
    actions: int
    kept_deliveries: int
    kept_actions: int


def prune(engine: Engine, days: int, now: datetime, dry_run: bool = False,
          batch: int = BATCH) -> Pruned:
    """Delete (or count) what is older than `days` days and no escalation needs."""
    cutoff = now - timedelta(days=days)
    needed = _needed_items(cutoff)
    old_deliveries = select(inbox.c.id).where(inbox.c.received_at < cutoff,
                                              inbox.c.status != "pending")
    kept_delivery = select(decisions.c.inbox_id).where(
        decisions.c.inbox_id.is_not(None),
        tuple_(decisions.c.source, decisions.c.item_id).in_(needed))
    deliveries, kept_d = _in_batches(engine, inbox, old_deliveries,
                                     lambda ids: kept_delivery.where(
                                         decisions.c.inbox_id.in_(ids)), dry_run, batch)
    finished = func.coalesce(outbox.c.done_at, outbox.c.created_at)
    old_actions = select(outbox.c.id).where(outbox.c.status.in_(("done", "shadow")),
                                            finished < cutoff)
    needed_keys = select(escalation_items.c.source + ":" + escalation_items.c.item_id).join(
        escalations, escalations.c.id == escalation_items.c.escalation_id).where(
        _still_needed(cutoff))
    actions, kept_a = _in_batches(engine, outbox, old_actions,
                                  lambda ids: select(outbox.c.id).where(
                                      outbox.c.id.in_(ids), outbox.c.item.in_(needed_keys)),
                                  dry_run, batch)
    return Pruned(cutoff, deliveries, actions, kept_d, kept_a)


def _still_needed(cutoff: datetime) -> ColumnElement[bool]:
    """An escalation whose deliveries and actions are kept: open, or resolved since the
    cutoff (its review may still be written)."""
    return or_(escalations.c.status == "open", escalations.c.resolved_at >= cutoff)


def _needed_items(cutoff: datetime) -> Select[Any]:
    return select(escalation_items.c.source, escalation_items.c.item_id).join(
        escalations, escalations.c.id == escalation_items.c.escalation_id).where(
        _still_needed(cutoff))


def _in_batches(engine: Engine, table: Table, candidates: Select[Any],
                kept: Callable[[list[int]], Select[Any]], dry_run: bool,
                batch: int) -> tuple[int, int]:
    """Walk the candidates in id order, `batch` at a time, deleting those not kept, each
    batch in a transaction of its own. Return (deleted, kept)."""
    id_column = table.c.id
    deleted = kept_count = 0
    after = 0
    while True:
        with writer_turn(engine), engine.begin() as conn:
            ids: list[int] = [int(i) for i in conn.execute(
                candidates.where(id_column > after).order_by(id_column).limit(batch)).scalars()]
            if not ids:
                return deleted, kept_count
            after = ids[-1]
            keep = {int(i) for i in conn.execute(kept(ids)).scalars()}
            gone = [i for i in ids if i not in keep]
            if gone and not dry_run:
                conn.execute(delete(table).where(id_column.in_(gone)))
        deleted += len(gone)
        kept_count += len(keep)

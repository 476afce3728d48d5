"""Keep each escalation's page state and review ticket in step with what the performer did.

The performer records every action's result (router.db.outbox `record`); for the two
kinds an escalation hangs on, a `page` and a `file_review`, that calls `record_outcomes`
in the same transaction:

- a page done is `sent` (at that time); one that went dead is `dead`, and its escalation,
  if still open, is `closed`: a page that never reached the CTO is not an open page
  (SPEC §4), so the group's next trigger pages anew;
- a review ticket filed names its key and URL on the escalation (also when the action
  failed after making it: GitHub dropping the assignee, say).

An operator's `firstline outbox retry` of a dead page marks it `pending` again
(`page_retried`); should it then be sent, its escalation reopens unless another page of
the same key opened meanwhile (PagerDuty folds both into one incident by the key).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from router.db.tables import escalations, outbox

WATCHED = ("page", "file_review")  # the action types an escalation's record follows


@dataclass(frozen=True, slots=True)
class Watched:
    """What became of one watched action: done (with what it created) or dead."""

    action_id: int
    decision_id: int
    type: str
    done: bool
    created_key: str | None = None
    created_url: str | None = None


def record_outcomes(conn: Connection, outcomes: Sequence[Watched], now: datetime) -> None:
    """Write what the watched actions' results mean for their escalations."""
    for outcome in outcomes:
        if outcome.type == "page":
            _page(conn, outcome, now)
        elif outcome.type == "file_review" and outcome.created_key:
            conn.execute(update(escalations)
                         .where(escalations.c.review_action_id == outcome.action_id)
                         .values(review_key=outcome.created_key,
                                 review_url=outcome.created_url))


def _page(conn: Connection, outcome: Watched, now: datetime) -> None:
    row = conn.execute(select(escalations.c.id, escalations.c.dedup_key,
                              escalations.c.status, escalations.c.page_state)
                       .where(escalations.c.decision_id == outcome.decision_id)).first()
    if row is None or row.page_state not in ("pending", "dead"):
        return  # shadow pages are never performed; PagerDuty may have told us it is sent
    values: dict[str, Any] = {"page_state": "sent" if outcome.done else "dead"}
    if outcome.done:
        values["page_sent_at"] = now
        if row.status == "closed" and not _another_open(conn, row.id, row.dedup_key):
            values.update(status="open", closed_at=None)
    elif row.status == "open":
        values.update(status="closed", closed_at=now)
    conn.execute(update(escalations).where(escalations.c.id == row.id).values(**values))


def _another_open(conn: Connection, esc_id: int, dedup_key: str) -> bool:
    return conn.execute(select(escalations.c.id).where(
        escalations.c.dedup_key == dedup_key, escalations.c.status == "open",
        escalations.c.id != esc_id)).first() is not None


def page_retried(conn: Connection, action_id: int) -> None:
    """Mark a dead page `pending` again when its action is put back in line."""
    action = conn.execute(select(outbox.c.type, outbox.c.decision_id)
                          .where(outbox.c.id == action_id)).first()
    if action is None or action.type != "page":
        return
    conn.execute(update(escalations).where(escalations.c.decision_id == action.decision_id,
                                           escalations.c.page_state == "dead")
                 .values(page_state="pending"))


def queue_review(conn: Connection, escalation_id: int, action: dict[str, Any]) -> int:
    """Queue a review ticket's outbox row and name it on the escalation; return its id."""
    action_id = int(conn.execute(outbox.insert().values(**action).returning(outbox.c.id))
                    .scalar_one())
    conn.execute(update(escalations).where(escalations.c.id == escalation_id)
                 .values(review_action_id=action_id))
    return action_id

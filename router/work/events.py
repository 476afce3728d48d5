"""The log lines of what the worker and the performer did, for JSON logs (router.logs):
one per delivery decided, timer fired and action performed, written once committed.

They carry ids, keys, outcomes and durations, never a payload or a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from router.db.ledger import BufferedDecision
from router.logs import log_event

if TYPE_CHECKING:
    from router.db.outbox import Outcomes
    from router.work.outbox import Lane

Line = dict[str, Any]


def delivery_line(row: Any, pending: BufferedDecision, decided_at: datetime) -> Line:
    """Return the line of a decided delivery: its ids, item, outcome, and how long it
    waited from being stored to being decided."""
    return {"event": "delivery", "delivery_id": row.delivery_id, "source": row.source,
            "item_key": pending.values["item_key"], "decision_id": pending.id,
            "outcome": pending.values["outcome"],
            "duration_ms": round((decided_at - row.received_at).total_seconds() * 1000, 1)}


def timer_line(key: str, pending: BufferedDecision) -> Line:
    """Return the line of a timer that came due and was decided."""
    return {"event": "timer", "timer": key, "item_key": pending.values["item_key"],
            "decision_id": pending.id, "outcome": pending.values["outcome"]}


def action_lines(finished: Lane, outcomes: Outcomes) -> list[Line]:
    """Return a line per performed action: what it was, on which item, for which
    decision, what became of it, and how long its tries took. `delivery_id` is added
    from the database (router.db.outbox `add_delivery_ids`)."""
    dead = {d["row_id"] for d in outcomes.dead}
    waiting = {w["row_id"] for w in outcomes.waiting}
    return [{"event": "action", "action_id": row.id, "type": action.type,
             "item_key": action.target.key, "decision_id": row.decision_id,
             "outcome": "dead" if row.id in dead else "retry" if row.id in waiting else "done",
             "attempt": row.attempts + 1,
             "duration_ms": round(finished.took.get(row.id, 0.0) * 1000, 1)}
            for row, action, _ in finished.performed]


def log_lines(lines: Sequence[Line]) -> None:
    """Write the lines (after their transaction committed)."""
    for line in lines:
        log_event(f"{line['event']} {line['outcome']}", line)

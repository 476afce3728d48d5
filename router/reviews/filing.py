"""File each resolved escalation's review as a ticket, where the scope note's `reviews:` says.

The worker calls `file_reviews` in the transaction that resolved the escalations (an
escalation resolves once, so each is filed once). The ticket is an outbox action,
`file_review`, performed like the others: at least once, in effect once (each adapter
marks the ticket and looks for it before creating another). Its body is the checklist as
it stood at resolution; it goes to the follow-up owner's account in the tool. In shadow
mode it is kept as a `shadow` action: what firstline would have filed.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson
from sqlalchemy import Connection

from router.db.pages import queue_review
from router.reviews.checklist import Review, build_review
from router.reviews.checklist_render import review_markdown
from router.scope.load import Scope


def file_reviews(conn: Connection, scope: Scope, resolved: Sequence[tuple[int, int]],
                 now: datetime) -> list[int]:
    """Queue a review ticket for each (escalation, resolving decision); return their ids."""
    where = scope.note.reviews
    if where is None:
        return []
    queued = []
    for escalation_id, decision_id in resolved:
        review = build_review(conn, scope, escalation_id, now)
        owner = review.follow_up_owner
        person = scope.people.get(owner) if owner else None
        target = {"source": where.source, "id": f"review-{escalation_id}",
                  "key": f"review of escalation {escalation_id}", "kind": where.issue_type,
                  "project": where.project, "url": None}
        action = {"type": "file_review", "to": owner,
                  "account": person.accounts.get(where.source) if person else None,
                  "title": review_title(review), "text": review_markdown(review),
                  "labels": list(where.labels)}
        queued.append(queue_review(conn, escalation_id, dict(
            decision_id=decision_id, type="file_review",
            target=orjson.dumps(target).decode(), item=f"{where.source}:review-{escalation_id}",
            action=orjson.dumps(action).decode(),
            status="pending" if scope.mode == "enforce" else "shadow",
            attempts=0, next_at=now, created_at=now)))
    return queued


def review_title(review: Review) -> str:
    """Return the ticket's title: the trigger and the items, and the escalation's id."""
    what = review.triggers[0].name if review.triggers else "CTO escalation"
    keys = ", ".join(i.key for i in review.items if not i.linked)
    return f"Review: {what} ({keys}) [escalation {review.id}]"

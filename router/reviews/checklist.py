"""Build the post-incident review checklist of one escalation from the stored records.

`build_review()` returns the review as data (`Review`); `router.reviews.checklist_render`
turns it into Markdown or the JSON of SPEC §9. It reads and never writes: the escalation,
the decisions that fired its triggers (their evidence), every delivery, decision and
action about its items and about the items linked to them (router.reviews.timeline,
router.reviews.links). What the records do not hold is said to be missing, never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, select

from router.core.decide import effective_owner
from router.core.model import WorkItem
from router.db.item_json import item_from_json
from router.db.reads import escalations as escalation_reads
from router.db.reads.escalations import review_state
from router.db.tables import decisions, items, outbox
from router.reviews.links import linked_items
from router.reviews.timeline import Line, Subject, item_timeline
from router.scope.load import Scope

QUESTIONS = ("What broke?", "Why did the team miss it?", "What will stop it next time?")
PREVENTION = ("A better alert", "A small code change", "A clearer runbook",
              "Removing a fragile vendor dependency")


class UnknownEscalation(LookupError):
    """No escalation has this id."""


@dataclass(frozen=True, slots=True)
class FiredTrigger:
    """A trigger that fired on one of the escalation's items, with its evidence."""

    id: str
    name: str
    because: tuple[str, ...]  # the predicates that held, with the values they saw
    item: str  # the key of the item it first fired on
    at: datetime  # the time of the event it fired on
    decision_id: int


@dataclass(frozen=True, slots=True)
class ReviewItem:
    source: str
    key: str
    url: str | None
    title: str
    linked: bool = False
    via: str | None = None  # how a linked item is linked: "names OPS-1"


@dataclass(frozen=True, slots=True)
class Ticket:
    """The review ticket: its action's state (filed, pending, dead, shadow) and, once
    filed, its key and link."""

    state: str
    key: str | None
    url: str | None


@dataclass(frozen=True, slots=True)
class Review:
    id: int
    status: str  # open | resolved | closed
    page_state: str  # shadow | pending | sent | dead
    paged_at: datetime
    page_sent_at: datetime | None
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    triggers: tuple[FiredTrigger, ...]
    items: tuple[ReviewItem, ...]
    timeline: tuple[Line, ...]
    follow_up_owner: str | None
    follow_up_why: str
    cto_minutes: float | None  # the page acknowledged -> resolved
    minutes_to_acknowledge: float | None  # the page decided -> acknowledged
    minutes_to_resolve: float | None  # the page decided -> resolved
    missing: tuple[str, ...]
    ticket: Ticket | None
    timezone: str
    questions: tuple[str, ...] = QUESTIONS
    prevention: tuple[str, ...] = PREVENTION


def build_review(conn: Connection, scope: Scope, escalation_id: int, now: datetime) -> Review:
    """Return the review of one escalation; raise UnknownEscalation for an unknown id."""
    esc = escalation_reads.escalation(conn, escalation_id)
    if esc is None:
        raise UnknownEscalation(f"no escalation {escalation_id}")
    missing: list[str] = []
    members = _members(conn, esc.id, missing)
    links = linked_items(conn, [m for _, m in members if m is not None])
    subjects = [Subject(source, item_id, frozenset(keys)) for (source, item_id, keys), _ in
                members]
    subjects += [Subject(link.item.source, link.item.id, frozenset({link.item.key}), True)
                 for link in links]
    lines: list[Line] = []
    for subject in subjects:
        found, gaps = item_timeline(conn, scope, subject)
        lines += found
        missing += gaps
    lines += _escalation_lines(esc)
    opening = _decision(conn, esc.decision_id)
    if opening is None:
        missing.append(f"the decision that opened escalation {esc.id} is no longer stored: "
                       "its evidence and follow-up owner are unknown")
    owner, why = _follow_up(scope, opening, now)
    return Review(
        id=esc.id, status=esc.status, page_state=esc.page_state, paged_at=esc.paged_at,
        page_sent_at=esc.page_sent_at, acknowledged_at=esc.acknowledged_at,
        resolved_at=esc.resolved_at,
        triggers=_triggers(conn, scope, esc, [s for s in subjects if not s.linked], opening),
        items=tuple([_item(keys, m) for keys, m in members] +
                    [_item((link.item.source, link.item.id, {link.item.key}), link.item,
                           link.via) for link in links]),
        timeline=tuple(sorted(lines, key=lambda ln: (ln.at, ln.seq, ln.source == "firstline"))),
        follow_up_owner=owner, follow_up_why=why,
        cto_minutes=_between(esc.acknowledged_at, esc.resolved_at),
        minutes_to_acknowledge=_minutes(esc.acknowledged_at, esc),
        minutes_to_resolve=_minutes(esc.resolved_at, esc),
        missing=tuple(missing), ticket=_ticket(conn, esc), timezone=scope.note.timezone,
    )


Member = tuple[tuple[str, str, set[str]], WorkItem | None]


def _members(conn: Connection, esc_id: int, missing: list[str]) -> list[Member]:
    """Return the escalation's items: (source, id, keys stored under) and the newest state."""
    out: list[Member] = []
    for row in escalation_reads.members(conn, [esc_id])[esc_id]:
        state = conn.execute(select(items.c.key, items.c.state).where(
            items.c.source == row.source, items.c.item_id == row.item_id)).first()
        keys = {row.item_key} | ({state.key} if state is not None else set())
        if state is None:
            missing.append(f"the state of {row.source} {row.item_key} is no longer stored")
        out.append(((row.source, row.item_id, keys),
                    item_from_json(state.state) if state is not None else None))
    return out


def _item(keys: tuple[str, str, set[str]], item: WorkItem | None,
          via: str | None = None) -> ReviewItem:
    if item is None:
        return ReviewItem(keys[0], min(keys[2]), None, "")
    return ReviewItem(item.source, item.key, item.url, item.title, via is not None, via)


def _decision(conn: Connection, decision_id: int) -> Any:
    return conn.execute(select(decisions).where(decisions.c.id == decision_id)).first()


def _triggers(conn: Connection, scope: Scope, esc: Any, subjects: list[Subject],
              opening: Any) -> tuple[FiredTrigger, ...]:
    """Return each trigger that fired on the escalation's items while it was open, with the
    evidence of its first firing."""
    end = esc.resolved_at or esc.closed_at
    rows = [opening] if opening is not None else []
    for s in subjects:
        rows += [r for r in conn.execute(select(decisions).where(
            decisions.c.source == s.source, decisions.c.item_key.in_(sorted(s.keys)),
            decisions.c.outcome == "escalate", decisions.c.id >= esc.decision_id))
            if r.item_id == s.item_id and (end is None or r.event_at <= end)]
    names = {t.id: t.name for t in scope.triggers}
    fired: dict[str, FiredTrigger] = {}
    for row in sorted(rows, key=lambda r: (r.event_at, r.id)):
        evidence = {e["id"]: e for e in orjson.loads(row.evidence).get("triggers", [])}
        for trigger in orjson.loads(row.triggers):
            if trigger not in fired:
                fired[trigger] = FiredTrigger(
                    trigger, names.get(trigger, trigger), _because(evidence.get(trigger)),
                    row.item_key or "-", row.event_at, row.id)
    if esc.trigger_id not in fired:  # its decision is gone: name it without evidence
        fired[esc.trigger_id] = FiredTrigger(esc.trigger_id, names.get(esc.trigger_id,
                                             esc.trigger_id), (), "-", esc.paged_at,
                                             esc.decision_id)
    return tuple(fired.values())


def _because(entry: dict[str, Any] | None) -> tuple[str, ...]:
    """Return the predicates that held and what they saw, and a timed trigger's clock."""
    if entry is None:
        return ()
    held = [c["saw"] for c in entry.get("checks", []) if c.get("held")] or ["always"]
    if entry.get("clock_start"):
        held.append(f"clock from {entry['clock_start']}, due {entry['due']}")
    return tuple(held)


def _follow_up(scope: Scope, opening: Any, now: datetime) -> tuple[str | None, str]:
    """Return who owns the follow-up: the matched scope line's owner, or their backup
    while they are away now."""
    if opening is None:
        return None, "unknown: the decision that opened the escalation is not stored"
    owner = orjson.loads(opening.evidence).get("owner") or {}
    line_owner = (owner.get("away") or [owner.get("owner")])[0]
    if line_owner is None:
        return None, "no scope line matched"
    why = f"first-response owner on the scope line {owner.get('line')!r}"
    if line_owner not in scope.people:
        return line_owner, why + " (no longer in the scope note)"
    chosen, away = effective_owner(scope, line_owner, now)
    if away:
        why += f"; backup while {', '.join(away['away'])} is away"
    return chosen, why


def _minutes(until: datetime | None, esc: Any) -> float | None:
    """Return minutes from the page's decision to `until`, as the monthly review counts.

    Not from `page_sent_at`: when PagerDuty tells of a page before the performer recorded
    it (a timed-out attempt PagerDuty took), that is the time firstline learned of it,
    often the acknowledgement itself, and time to acknowledge read 0.
    """
    return _between(esc.paged_at, until)


def _between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None or end < start:
        return None
    return round((end - start).total_seconds() / 60.0, 1)


def _escalation_lines(esc: Any) -> list[Line]:
    where = f"escalation {esc.id}"
    lines = []
    if esc.acknowledged_at is not None:
        lines.append(Line(esc.acknowledged_at, "pagerduty", esc.dedup_key,
                          "the CTO's page was acknowledged"))
    if esc.resolved_at is not None:
        lines.append(Line(esc.resolved_at, "firstline", where,
                          "escalation resolved: ready for review"))
    if esc.closed_at is not None:
        why = "shadow mode" if esc.page_state == "shadow" else f"page {esc.page_state}"
        lines.append(Line(esc.closed_at, "firstline", where,
                          f"escalation closed: its page never reached the CTO ({why})"))
    return lines


def _ticket(conn: Connection, esc: Any) -> Ticket | None:
    if esc.review_action_id is None:
        return None
    status = conn.execute(select(outbox.c.status).where(
        outbox.c.id == esc.review_action_id)).scalar()
    return Ticket(review_state(status), esc.review_key, esc.review_url)

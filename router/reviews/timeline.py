"""One item's timeline, from what is stored: every delivery, decision and action about it.

Each stored delivery is parsed again by its vendor's adapter, as the worker parsed it
(router.work.normalize sits above this step, so the adapters are called directly), and
told as what changed since the item's previous state: created, status, priority and
severity, who assigned whom, labels; events that carry no item state (a comment, a note)
keep the vendor's own words. firstline's decisions and the actions they queued join as
lines of their own. Every line carries its source and that source's own time: the
delivery's timestamp, the decision's event time, the time an action was done. Nothing is
filled in: a delivery that is no longer stored is said to be missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import Connection, bindparam, select

from adapters import ADAPTERS
from router.core.model import Event, WorkItem
from router.db.tables import decisions, inbox, outbox
from router.scope.load import Scope

TEXT_SHOWN = 300  # characters of a comment quoted in a line (firstline's fit whole)


@dataclass(frozen=True, slots=True)
class Line:
    """One thing that happened, from one source, at that source's time."""

    at: datetime
    source: str  # jira | linear | github | pagerduty | firstline
    key: str
    event: str
    linked: bool = False  # about an item that names (or is named by) an escalated one
    seq: int = 0  # keeps a source's own order among lines of the same time


@dataclass(frozen=True, slots=True)
class Subject:
    """An item whose records a timeline reads: its id, the keys it was stored under."""

    source: str
    item_id: str
    keys: frozenset[str]
    linked: bool = False


def item_timeline(conn: Connection, scope: Scope, subject: Subject) \
        -> tuple[list[Line], list[str]]:
    """Return the lines about one item and what is missing from its records."""
    rows = [r for r in conn.execute(_DECISIONS, {"source": subject.source,
                                                 "keys": sorted(subject.keys)})
            if r.item_id == subject.item_id]
    label = min(subject.keys)
    if not rows:
        return [], [f"no decisions about {subject.source} {label} are stored"]
    bodies = _bodies(conn, [r.inbox_id for r in rows if r.inbox_id is not None])
    actions = _actions(conn, [r.id for r in rows])
    lines: list[Line] = []
    pruned = 0
    state = _State()
    for row in rows:
        stored = bodies.get(row.inbox_id) if row.inbox_id is not None else None
        if row.inbox_id is not None and stored is None:
            pruned += 1
            lines.append(_line(row.event_at, subject, row.item_key or label,
                               f"{row.event_type} (the delivery is no longer stored)", row.id))
        elif stored is not None:
            event = _parse(stored)
            text = state.tell(event, row.severity, scope) if event is not None else None
            lines.append(_line(row.event_at, subject, row.item_key or label,
                               text or row.event_type, row.id))
        lines += _decision_lines(row, subject, actions.get(row.id, ()), scope)
    missing = [f"{pruned} of {sum(1 for r in rows if r.inbox_id is not None)} deliveries "
               f"about {subject.source} {label} are no longer stored; their lines come "
               "from the decisions alone"] if pruned else []
    return lines, missing


def _line(at: datetime, subject: Subject, key: str, text: str, seq: int,
          source: str | None = None) -> Line:
    return Line(at, source or subject.source, key, text, subject.linked, seq)


@dataclass
class _State:
    """The item as the previous delivery left it, to tell what the next one changed."""

    item: WorkItem | None = None
    severity: str | None = None

    def tell(self, event: Event, severity: str | None, scope: Scope) -> str:
        """Describe one delivery: what changed in the item, by whom."""
        item = event.item
        if item is None:  # a comment or note: the vendor's words
            return event.summary or event.event_type
        before, was = self.item, self.severity
        if before is None or item.updated_at >= before.updated_at:
            self.item, self.severity = item, severity or self.severity
        if before is None:
            text = f"{event.summary or 'first seen'}: {_first_sight(item, severity, scope)}"
        else:
            changes = _changes(before, was, item, severity, scope)
            text = "; ".join(changes) if changes else (event.summary or event.event_type)
        who = _person(scope, item.source, event.actor)
        return f"{text} (by {who})" if who else text


def _first_sight(item: WorkItem, severity: str | None, scope: Scope) -> str:
    parts = [f"{item.title!r}", f"status {item.status}"]
    if item.priority:
        parts.append(f"priority {item.priority}")
    if severity:
        parts.append(severity)
    if item.labels:
        parts.append("labels " + ", ".join(sorted(item.labels)))
    parts.append("assigned to " + _people(scope, item.source, item.assignees)
                 if item.assignees else "unassigned")
    return "; ".join(parts)


def _changes(before: WorkItem, was: str | None, item: WorkItem, severity: str | None,
             scope: Scope) -> list[str]:
    """List what differs between two states of an item, in words."""
    out = []
    if item.status != before.status:
        out.append(f"status {before.status} -> {item.status}")
    if item.priority != before.priority:
        out.append(f"priority {before.priority or 'none'} -> {item.priority or 'none'}")
    if severity and was and severity != was:
        out.append(f"severity {was} -> {severity}")
    added = [a for a in item.assignees if a.lower() not in {b.lower() for b in before.assignees}]
    gone = [a for a in before.assignees if a.lower() not in {b.lower() for b in item.assignees}]
    if added:
        out.append(f"assigned to {_people(scope, item.source, added)}")
    if gone:
        out.append(f"unassigned {_people(scope, item.source, gone)}")
    if item.labels != before.labels:
        moves = [f"+{x}" for x in sorted(item.labels - before.labels)]
        moves += [f"-{x}" for x in sorted(before.labels - item.labels)]
        out.append("labels " + " ".join(moves))
    if item.title != before.title:
        out.append(f"title now {item.title!r}")
    return out


def _person(scope: Scope, source: Any, account: str | None) -> str | None:
    return (scope.person_for(source, account) or account) if account else None


def _people(scope: Scope, source: Any, accounts: Iterable[str]) -> str:
    return ", ".join(_person(scope, source, a) or a for a in accounts)


_ACTION_WORDS = {
    "page": "paged the CTO", "resolve_page": "resolved the CTO's page",
    "comment": "commented", "note": "added a note", "assign": "assigned",
    "unassign": "took off", "label": "labelled", "reassign_incident": "reassigned the incident",
    "file_review": "filed the review ticket",
}


def _decision_lines(row: Any, subject: Subject, actions: Sequence[Any],
                    scope: Scope) -> list[Line]:
    """Tell what firstline decided (when it did something or fired a trigger) and what
    became of each action it queued."""
    lines = []
    if row.outcome in ("escalate", "reassign", "defer") or actions or row.exception:
        lines.append(_line(row.event_at, subject, row.item_key or "-",
                           f"{row.outcome}: {row.reason}", row.id, "firstline"))
    for action in actions:
        at, text = _action_text(action, row.event_at, scope)
        lines.append(_line(at, subject, row.item_key or "-", text, row.id, "firstline"))
    return lines


def _action_text(action: Any, decided: datetime, scope: Scope) -> tuple[datetime, str]:
    """Return when an action took effect (or was decided) and what it did, in words."""
    data = orjson.loads(action.action)
    source = orjson.loads(action.target).get("source")
    words = _ACTION_WORDS.get(action.type, action.type)
    if action.type in ("assign", "reassign_incident") and (data.get("to") or data.get("account")):
        words += f" {data.get('to') or data['account']}"
    if data.get("remove"):
        words += f" (taking {_people(scope, source, data['remove'])} off)"
    if action.type == "label" and data.get("label"):
        words += f" {data['label']}"
    if action.type in ("page", "resolve_page") and data.get("dedup_key"):
        words += f" ({data['dedup_key']})"
    if action.type in ("comment", "note") and data.get("text"):
        words += f": {_quote(data['text'])}"
    if action.status == "done":
        return action.done_at or decided, words
    if action.status == "shadow":
        return decided, f"would have {words} (shadow mode: not performed)"
    if action.status == "dead":
        return decided, f"{words}: gave up after {action.attempts} attempts ({action.last_error})"
    return decided, f"{words}: pending ({action.attempts} attempts so far)"


def _quote(text: str) -> str:
    flat = " ".join(text.split())
    return f'"{flat[:TEXT_SHOWN]}…"' if len(flat) > TEXT_SHOWN else f'"{flat}"'


@dataclass(frozen=True, slots=True)
class _Stored:
    source: str
    event_type: str | None
    body: bytes
    received_at: datetime


def _parse(stored: _Stored) -> Event | None:
    """Parse a stored delivery as the worker did; None when it no longer parses."""
    try:
        return ADAPTERS[stored.source].parse(orjson.loads(stored.body),  # type: ignore[index]
                                             stored.event_type)
    except (ValueError, KeyError):
        return None


def _bodies(conn: Connection, ids: list[int]) -> dict[int, _Stored]:
    if not ids:
        return {}
    found = conn.execute(select(inbox.c.id, inbox.c.source, inbox.c.event_type, inbox.c.body,
                                inbox.c.received_at).where(inbox.c.id.in_(ids)))
    return {r.id: _Stored(r.source, r.event_type, bytes(r.body), r.received_at) for r in found}


def _actions(conn: Connection, decision_ids: list[int]) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for row in conn.execute(select(outbox).where(outbox.c.decision_id.in_(decision_ids))
                            .order_by(outbox.c.id)):
        out.setdefault(row.decision_id, []).append(row)
    return out


# `source = ? AND item_key IN (...)` walks the decisions' (source, item_key) index; the
# caller keeps the rows of its item id (keys change when items move).
_DECISIONS = (select(decisions.c.id, decisions.c.inbox_id, decisions.c.item_id,
                     decisions.c.item_key, decisions.c.event_type, decisions.c.outcome,
                     decisions.c.severity, decisions.c.reason, decisions.c.event_at,
                     decisions.c.exception)
              .where(decisions.c.source == bindparam("source"),
                     decisions.c.item_key.in_(bindparam("keys", expanding=True)))
              .order_by(decisions.c.event_at, decisions.c.id))

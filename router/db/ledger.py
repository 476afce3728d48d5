"""Apply the ledger rules to the database, inside one worker transaction (one batch).

A batch runs under the ledger lock, so nothing else changes the ledger meanwhile: the
open pages, the last hour's pages and the week's hours are read once per batch and kept
in step in memory as decisions are recorded, instead of being queried per delivery.

Writes are batched too. The batch's items (and their armed timers) are read with one
query each (`prefetch`); decisions, their actions, item states and timer changes are
buffered and written by `flush()` as a few multi-row statements. Per-statement overhead,
not SQL, was most of the worker's time: per delivery it ran about eight statements, each
built and compiled anew. The rare writes (pages opened, joined, resolved; charges; the
lifecycle of firstline's own pages) run at once, after flushing the decisions they name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Table, bindparam, or_, select, update

from router.core.durations import week_start
from router.core.history import history_from_json, history_to_json, remember
from router.core.ledger import (
    DEFAULT_PAGE_HOURS,
    effects,
    first_page_state,
    is_open_page,
    page_hours,
)
from router.core.model import Decision, Event, History, WorkItem
from router.core.outcomes import is_own_page
from router.db.bulk import insert_returning_ids, insert_rows
from router.db.item_json import item_from_json, item_to_json
from router.db.tables import (
    charges,
    decisions,
    escalation_items,
    escalations,
    items,
    outbox,
    timers,
)
from router.scope.load import Scope

ItemId = tuple[str, str]
PREFETCH_CHUNK = 400  # item ids per IN (...): 800 parameters, far below either limit

# Built once: building and cache-keying a statement per row cost more than running it.
_DISARM = (update(timers).where(timers.c.source == bindparam("b_source"),
                                timers.c.item_id == bindparam("b_item_id"),
                                timers.c.trigger_id == bindparam("b_trigger_id"))
           .values(armed=False))
_LEAVE = (update(escalation_items).where(escalation_items.c.source == bindparam("b_source"),
                                          escalation_items.c.item_id == bindparam("b_item_id"))
          .values(open=False))
_ITEMS = select(items.c.item_id, items.c.key, items.c.state, items.c.history).where(
    items.c.source == bindparam("b_source"),
    items.c.item_id.in_(bindparam("b_ids", expanding=True)))
_ARMED = select(timers.c.item_id, timers.c.trigger_id, timers.c.due_at).where(
    timers.c.source == bindparam("b_source"),
    timers.c.item_id.in_(bindparam("b_ids", expanding=True)), timers.c.armed.is_(True))
# The open pages and the last hour's pages, in one query (most batches find none).
_PAGES = select(escalations.c.id, escalations.c.dedup_key, escalations.c.status,
                escalations.c.paged_at, escalations.c.page_state).where(
    or_(escalations.c.status == "open", escalations.c.paged_at > bindparam("b_since")))
_CLOSE = (update(escalations).where(escalations.c.id.in_(bindparam("b_ids", expanding=True)),
                                    escalations.c.status == "open")
          .values(status="closed", closed_at=bindparam("b_at")))
_MEMBERS = select(escalation_items.c.escalation_id, escalation_items.c.source,
                  escalation_items.c.item_id).where(
    escalation_items.c.escalation_id.in_(bindparam("b_ids", expanding=True)),
    escalation_items.c.open.is_(True))
_WEEK_CHARGES = select(charges.c.source, charges.c.item_id, charges.c.hours).where(
    charges.c.week_start == bindparam("b_week"))
_DISARM_FIRED = update(timers).where(timers.c.id == bindparam("b_id")).values(armed=False)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a decision came from: a stored delivery, or a timer that came due."""

    inbox_id: int | None = None
    delivery_id: str | None = None
    timer_key: str | None = None


@dataclass
class _OpenPage:
    id: int
    members: set[ItemId] = field(default_factory=set)


@dataclass(slots=True)
class BufferedDecision:
    """A decision row waiting for `flush()`; `id` is known once it is written."""

    values: dict[str, Any]
    actions: list[dict[str, Any]]
    id: int | None = None


@dataclass(slots=True)
class _Item:
    """One item's row as this batch sees it: as stored, plus what the batch changed."""

    key: str | None
    state: str | None  # the newest WorkItem as JSON
    history: History  # the per-item part (router.core.history)
    armed: dict[str, datetime]  # timers armed in the database: trigger -> due
    due: dict[str, datetime] | None = None  # timers to leave armed (None: untouched)
    updated_at: datetime | None = None  # set when the batch changed the row


class DbLedger:
    """The ledger in the database for one batch; see the module docstring.

    Call `flush()` before the transaction commits: until then decisions, actions, item
    states and timers live in memory only.
    """

    def __init__(self, conn: Connection, scope: Scope, now: datetime) -> None:
        self.conn = conn
        self.scope = scope
        self.pages: dict[str, _OpenPage] = {}
        self.page_times: list[datetime] = []
        self.resolved: list[tuple[int, int]] = []  # (escalation, decision) resolved this batch
        hour_ago = now - timedelta(hours=1)
        never_sent = []
        for esc_id, key, status, paged_at, state in conn.execute(_PAGES, {"b_since": hour_ago}):
            counts = is_open_page(state, scope.mode)
            if status == "open":
                if counts:
                    self.pages[key] = _OpenPage(esc_id)
                else:
                    never_sent.append(esc_id)
            if counts and paged_at > hour_ago:  # an open page may be older
                self.page_times.append(paged_at)
        if never_sent:  # shadow-mode pages after the switch to enforce (SPEC §4)
            conn.execute(_CLOSE, {"b_ids": never_sent, "b_at": now})
        by_id = {p.id: p for p in self.pages.values()}
        if by_id:  # members by escalation id: the primary key's index, not a table scan
            for esc_id, source, item_id in conn.execute(_MEMBERS, {"b_ids": list(by_id)}):
                by_id[esc_id].members.add((source, item_id))
        self.weeks: dict[date, tuple[float, set[ItemId]]] = {}
        self.rows: dict[ItemId, _Item] = {}
        self._decisions: list[BufferedDecision] = []
        self.queued = 0  # actions queued for the performer (not shadow)

    # -- reading --------------------------------------------------------------------

    def prefetch(self, ids: Iterable[ItemId]) -> None:
        """Read the items (and their armed timers) a batch is about, a few queries in all."""
        by_source: dict[str, list[str]] = {}
        for source, item_id in {i for i in ids if i not in self.rows}:
            by_source.setdefault(source, []).append(item_id)
        # `source = ? AND item_id IN (...)` walks the (source, item_id) index; SQLite
        # scans the whole table for a row-value IN.
        for source, all_ids in sorted(by_source.items()):
            for start in range(0, len(all_ids), PREFETCH_CHUNK):
                self._prefetch(source, all_ids[start:start + PREFETCH_CHUNK])

    def _prefetch(self, source: str, ids: list[str]) -> None:
        found = self.conn.execute(_ITEMS, {"b_source": source, "b_ids": ids})
        for item_id, key, state, history in found:
            self.rows[(source, item_id)] = _Item(
                key, state, history_from_json(orjson.loads(history)), {})
        for item_id in ids:
            self.rows.setdefault((source, item_id), _Item(None, None, History(), {}))
        for item_id, trigger, due in self.conn.execute(_ARMED, {"b_source": source,
                                                                "b_ids": ids}):
            self.rows[(source, item_id)].armed[trigger] = due

    def _row(self, source: str, item_id: str) -> _Item:
        me = (source, item_id)
        if me not in self.rows:
            self.prefetch([me])
        return self.rows[me]

    def load(self, source: str, item_id: str) -> tuple[WorkItem | None, History]:
        """Return the item's newest state and per-item history, as of this batch."""
        row = self._row(source, item_id)
        return (item_from_json(row.state) if row.state else None), row.history

    def history(self, source: str, item_id: str, now: datetime) -> History:
        """Return the item's history joined with the ledger's facts as of `now`."""
        base = self._row(source, item_id).history
        me = (source, item_id)
        hours, charged = self._week(week_start(now, self.scope.tz, self.scope.week_starts))
        hour_ago = now - timedelta(hours=1)
        return replace(
            base,
            member_of={k: len(p.members) - 1 for k, p in self.pages.items() if me in p.members},
            open_pages=self.pages.keys(),
            cap_used_hours=hours, charged_this_week=me in charged,
            pages_last_hour=sum(1 for t in self.page_times if hour_ago < t <= now))

    def _week(self, week: date) -> tuple[float, set[ItemId]]:
        if week not in self.weeks:
            rows = self.conn.execute(_WEEK_CHARGES, {"b_week": week})
            hours, charged = 0.0, set()
            for source, item_id, h in rows:
                hours += h
                charged.add((source, item_id))
            self.weeks[week] = (hours, charged)
        return self.weeks[week]

    # -- recording ------------------------------------------------------------------

    def record(self, event: Event, decision: Decision, history: History, now: datetime,
               origin: Origin) -> BufferedDecision:
        """Store the decision (at the next flush) and apply its effects; return the
        buffered decision row (its `id` is known after the flush)."""
        item = event.item
        pending = self._decision(event, decision, event.occurred_at or now, now, origin)
        if item is None:
            return pending
        self._queue_actions(pending, item, decision, now)
        if decision.outcome == "ignore" and is_own_page(item, self.scope):
            self._page_update(event, item, now, pending)
        me: ItemId = (item.source, item.id)
        change = effects(event, decision, history)
        self._save_item(event, decision, change.newer_state, now)
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        for page in change.opened:
            esc_id = int(self.conn.execute(escalations.insert().values(
                dedup_key=page.dedup_key, trigger_id=page.trigger, status="open",
                decision_id=self._id(pending), paged_at=now,
                page_state=first_page_state(self.scope.mode)).returning(escalations.c.id))
                .scalar_one())
            self.pages[page.dedup_key] = _OpenPage(esc_id)
            self.page_times.append(now)
            self._charge(week, ("page", str(esc_id)), DEFAULT_PAGE_HOURS, pending)
        for key in change.joined:
            self._join(key, item, now)
        for key in change.resolved:
            self.pages.pop(key, None)
            flipped = self.conn.execute(update(escalations).where(
                escalations.c.dedup_key == key, escalations.c.status == "open").values(
                status="resolved", resolved_at=now).returning(escalations.c.id)).scalars()
            self.resolved += [(int(e), self._id(pending)) for e in flipped]
        if change.leaves_pages:
            for open_page in self.pages.values():
                open_page.members.discard(me)
            self.conn.execute(_LEAVE, {"b_source": item.source, "b_item_id": item.id})
        if change.charge_hours:
            self._charge(week, me, change.charge_hours, pending)
        self._row(item.source, item.id).due = dict(change.timers)
        return pending

    def fired(self, timer_id: int, source: str, item_id: str, trigger: str) -> None:
        """Disarm a timer that came due (before its decision, which may arm it again)."""
        self.conn.execute(_DISARM_FIRED, {"b_id": timer_id})
        row = self.rows.get((source, item_id))
        if row is not None:
            row.armed.pop(trigger, None)

    def flush(self) -> None:
        """Write what the batch buffered: decisions with their actions, items, timers."""
        self._flush_decisions()
        changed = [(me, row) for me, row in self.rows.items() if row.updated_at is not None]
        if changed:
            _upsert(self.conn, "items", [
                dict(source=me[0], item_id=me[1], key=row.key, state=row.state,
                     history=orjson.dumps(history_to_json(row.history)).decode(),
                     updated_at=row.updated_at) for me, row in changed])
        disarm, arm = [], []
        for me, row in self.rows.items():
            row.updated_at = None
            if row.due is None:
                continue
            disarm += [dict(b_source=me[0], b_item_id=me[1], b_trigger_id=t)
                       for t in row.armed if t not in row.due]
            arm += [dict(source=me[0], item_id=me[1], trigger_id=t, due_at=at, armed=True)
                    for t, at in row.due.items() if row.armed.get(t) != at]
            row.armed, row.due = row.due, None
        if disarm:
            self.conn.execute(_DISARM, disarm)
        if arm:
            _upsert(self.conn, "timers", arm)

    def _decision(self, event: Event, d: Decision, event_at: datetime, now: datetime,
                  origin: Origin) -> BufferedDecision:
        item, ref = event.item, event.ref
        pending = BufferedDecision(dict(
            inbox_id=origin.inbox_id, timer_key=origin.timer_key,
            delivery_id=origin.delivery_id, source=event.source,
            item_id=item.id if item else (ref.id if ref else None),
            item_key=item.key if item else (ref.key or ref.id if ref else None),
            event_type=event.event_type, outcome=d.outcome, owner=d.owner, scope_line=d.scope,
            severity=d.severity, triggers=orjson.dumps([t.id for t in d.triggers]).decode(),
            reason=d.reason, evidence=orjson.dumps(d.evidence).decode(),
            actions=orjson.dumps([a.as_dict() for a in d.actions]).decode(),
            scope_hash=self.scope.hash, event_at=event_at, decided_at=now,
            cap_hours=d.cap_hours, exception=d.exception, handed_back=d.handed_back,
            assigner=d.assigner, owner_minutes=d.owner_minutes,
            project=item.project if item else None,
            labels=orjson.dumps(sorted(item.labels)).decode() if item and item.labels else None,
            reporter=item.reporter if item else None), [])
        self._decisions.append(pending)
        return pending

    def _id(self, pending: BufferedDecision) -> int:
        """Return a buffered decision's id, writing the buffered decisions to learn it."""
        if pending.id is None:
            self._flush_decisions()
        assert pending.id is not None
        return pending.id

    def _flush_decisions(self) -> None:
        if not self._decisions:
            return
        buffered, self._decisions = self._decisions, []
        ids = insert_returning_ids(self.conn, decisions, [p.values for p in buffered])
        actions = []
        for pending, decision_id in zip(buffered, ids, strict=True):
            pending.id = decision_id
            actions += [{**a, "decision_id": decision_id} for a in pending.actions]
        insert_rows(self.conn, outbox, actions)

    def _queue_actions(self, pending: BufferedDecision, item: WorkItem, decision: Decision,
                       now: datetime) -> None:
        """Write the actions in the decision's transaction: performed later, at least once.

        In shadow mode they are kept as `shadow`: what firstline would have done.
        """
        if not decision.actions:
            return
        status = "pending" if self.scope.mode == "enforce" else "shadow"
        self.queued += len(decision.actions) if status == "pending" else 0
        target = orjson.dumps({"source": item.source, "id": item.id, "key": item.key,
                               "kind": item.kind, "project": item.project,
                               "url": item.url}).decode()
        pending.actions += [
            dict(type=a.type, target=target, item=f"{item.source}:{item.id}",
                 action=orjson.dumps({**a.as_dict(), "severity": decision.severity}).decode(),
                 status=status, attempts=0, next_at=now, created_at=now)
            for a in decision.actions]

    def _page_update(self, event: Event, item: WorkItem, now: datetime,
                     pending: BufferedDecision) -> None:
        """Note when one of firstline's own pages was acknowledged or resolved, and by whom;
        a resolved page's CTO time becomes acknowledged->resolved.

        PagerDuty telling of the page proves it was sent, whatever the performer recorded
        (an attempt that timed out after PagerDuty took it, say).
        """
        key = item.incident_key
        row = self.conn.execute(select(
            escalations.c.id, escalations.c.acknowledged_at, escalations.c.status,
            escalations.c.page_state, escalations.c.page_sent_at).where(
            escalations.c.dedup_key == key).order_by(escalations.c.id.desc())).first()
        if row is None:
            return
        at = event.occurred_at or now
        values: dict[str, Any] = {}
        if row.page_state in ("pending", "dead"):
            values.update(page_state="sent", page_sent_at=row.page_sent_at or at)
        if item.status in ("acknowledged", "resolved") and row.acknowledged_at is None:
            values["acknowledged_at"] = at
        if item.status == "resolved":
            values.update(status="resolved", resolved_at=at)
            self.pages.pop(key or "", None)
            acknowledged = values.get("acknowledged_at", row.acknowledged_at)
            self.conn.execute(update(charges).where(
                charges.c.source == "page", charges.c.item_id == str(row.id)).values(
                hours=page_hours(acknowledged, at)))
            if row.status != "resolved":
                self.resolved.append((int(row.id), self._id(pending)))
        if values:
            self.conn.execute(update(escalations).where(escalations.c.id == row.id)
                              .values(**values))

    def _charge(self, week: date, who: ItemId, hours: float, pending: BufferedDecision) -> None:
        total, charged = self._week(week)
        if who in charged:
            return
        _upsert(self.conn, "charges", [dict(
            week_start=week, source=who[0], item_id=who[1], hours=hours,
            decision_id=self._id(pending))])
        charged.add(who)
        self.weeks[week] = (total + hours, charged)

    def _save_item(self, event: Event, decision: Decision, newer: bool, now: datetime) -> None:
        item = event.item
        assert item is not None
        row = self._row(item.source, item.id)
        row.history = remember(row.history, event, decision)
        if newer or row.state is None:
            row.key, row.state = item.key, item_to_json(item)
        row.updated_at = now

    def _join(self, key: str, item: WorkItem, now: datetime) -> None:
        page = self.pages.get(key)
        if page is None:
            return
        page.members.add((item.source, item.id))
        _upsert(self.conn, "escalation_items", [dict(
            escalation_id=page.id, source=item.source, item_id=item.id, item_key=item.key,
            open=True, joined_at=now)])


# What each upsert keys on and, on conflict, overwrites (nothing: keep the first row).
_UPSERTS: dict[str, tuple[Table, tuple[str, ...], tuple[str, ...]]] = {
    "items": (items, ("source", "item_id"), ("key", "state", "history", "updated_at")),
    "timers": (timers, ("source", "item_id", "trigger_id"), ("due_at", "armed")),
    "charges": (charges, ("week_start", "source", "item_id"), ()),
    "escalation_items": (escalation_items, ("escalation_id", "source", "item_id"), ("open",)),
}


def _upsert(conn: Connection, table_name: str, rows: list[dict[str, Any]]) -> None:
    """Insert rows into the table, or on its key update (or keep) the existing ones."""
    table, keys, overwrite = _UPSERTS[table_name]
    insert_rows(conn, table, rows, on_conflict=(keys, overwrite))

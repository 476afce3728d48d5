"""Apply the ledger rules to the database, inside one worker transaction (one batch).

A batch runs under the ledger lock, so nothing else changes the ledger meanwhile: the
open pages, the last hour's pages and the week's hours are read once per batch and kept
in step in memory as decisions are recorded, instead of being queried per delivery.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Connection, Table, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from router.durations import week_start
from router.history import history_from_json, history_to_json, remember
from router.ledger import DEFAULT_PAGE_HOURS, effects
from router.model import Decision, Event, History, WorkItem
from router.outcomes import is_own_page
from router.records import (
    charges,
    decisions,
    escalation_items,
    escalations,
    item_from_json,
    item_to_json,
    items,
    outbox,
    page_hours,
    timers,
)
from router.scope import Scope

ItemId = tuple[str, str]


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


class DbLedger:
    """The ledger in the database for one batch; see the module docstring."""

    def __init__(self, conn: Connection, scope: Scope, now: datetime) -> None:
        self.conn = conn
        self.scope = scope
        self.pages: dict[str, _OpenPage] = {}
        for esc_id, key in conn.execute(select(escalations.c.id, escalations.c.dedup_key)
                                        .where(escalations.c.status == "open")):
            self.pages[key] = _OpenPage(esc_id)
        by_id = {p.id: p for p in self.pages.values()}
        for esc_id, source, item_id in conn.execute(
                select(escalation_items.c.escalation_id, escalation_items.c.source,
                       escalation_items.c.item_id).where(escalation_items.c.open.is_(True))):
            if esc_id in by_id:
                by_id[esc_id].members.add((source, item_id))
        self.page_times = [at for (at,) in conn.execute(select(escalations.c.paged_at).where(
            escalations.c.paged_at > now - timedelta(hours=1)))]
        self.weeks: dict[date, tuple[float, set[ItemId]]] = {}
        self.item_rows: dict[ItemId, History] = {}

    def load(self, source: str, item_id: str) -> tuple[WorkItem | None, History]:
        row = self.conn.execute(select(items.c.state, items.c.history).where(
            items.c.source == source, items.c.item_id == item_id)).first()
        if row is None:
            return None, History()
        return item_from_json(row.state), history_from_json(orjson.loads(row.history))

    def history(self, source: str, item_id: str, now: datetime) -> History:
        """Return the item's history joined with the ledger's facts as of `now`."""
        _, base = self.load(source, item_id)
        self.item_rows[(source, item_id)] = base
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
            rows = self.conn.execute(select(charges.c.source, charges.c.item_id,
                                            charges.c.hours).where(charges.c.week_start == week))
            hours, charged = 0.0, set()
            for source, item_id, h in rows:
                hours += h
                charged.add((source, item_id))
            self.weeks[week] = (hours, charged)
        return self.weeks[week]

    def record(self, event: Event, decision: Decision, history: History, now: datetime,
               origin: Origin) -> int:
        """Store the decision and apply its effects; return the decision's id."""
        item = event.item
        decision_id = self._insert_decision(event, decision, event.occurred_at or now, now,
                                            origin)
        if item is None:
            return decision_id
        self._queue_actions(decision_id, item, decision, now)
        if decision.outcome == "ignore" and is_own_page(item, self.scope):
            self._page_update(event, item, now)
        me: ItemId = (item.source, item.id)
        change = effects(event, decision, history)
        self._save_item(event, decision, change.newer_state, now)
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        for page in change.opened:
            esc_id = int(self.conn.execute(escalations.insert().values(
                dedup_key=page.dedup_key, trigger_id=page.trigger, status="open",
                decision_id=decision_id, paged_at=now).returning(escalations.c.id)).scalar_one())
            self.pages[page.dedup_key] = _OpenPage(esc_id)
            self.page_times.append(now)
            self._charge(week, ("page", str(esc_id)), DEFAULT_PAGE_HOURS, decision_id)
        for key in change.joined:
            self._join(key, item, now)
        for key in change.resolved:
            self.pages.pop(key, None)
            self.conn.execute(update(escalations).where(
                escalations.c.dedup_key == key, escalations.c.status == "open").values(
                status="resolved", resolved_at=now))
        if change.leaves_pages:
            for open_page in self.pages.values():
                open_page.members.discard(me)
            self.conn.execute(update(escalation_items).where(
                escalation_items.c.source == item.source,
                escalation_items.c.item_id == item.id).values(open=False))
        if change.charge_hours:
            self._charge(week, me, change.charge_hours, decision_id)
        self._arm(item, dict(change.timers))
        return decision_id

    def _queue_actions(self, decision_id: int, item: WorkItem, decision: Decision,
                       now: datetime) -> None:
        """Write the actions in the decision's transaction: performed later, at least once.

        In shadow mode they are kept as `shadow`: what firstline would have done.
        """
        if not decision.actions:
            return
        status = "pending" if self.scope.mode == "enforce" else "shadow"
        target = orjson.dumps({"source": item.source, "id": item.id, "key": item.key,
                               "kind": item.kind, "project": item.project,
                               "url": item.url}).decode()
        self.conn.execute(outbox.insert(), [
            dict(decision_id=decision_id, type=a.type, target=target,
                 action=orjson.dumps({**a.as_dict(), "severity": decision.severity}).decode(),
                 status=status, attempts=0, next_at=now, created_at=now)
            for a in decision.actions])

    def _page_update(self, event: Event, item: WorkItem, now: datetime) -> None:
        """Note when one of firstline's own pages was acknowledged or resolved, and by whom;
        a resolved page's CTO time becomes acknowledged->resolved."""
        key = item.incident_key
        row = self.conn.execute(select(escalations.c.id, escalations.c.acknowledged_at,
                                       escalations.c.paged_at).where(
            escalations.c.dedup_key == key).order_by(escalations.c.id.desc())).first()
        if row is None:
            return
        at = event.occurred_at or now
        values: dict[str, Any] = {}
        if item.status in ("acknowledged", "resolved") and row.acknowledged_at is None:
            values["acknowledged_at"] = at
        if item.status == "resolved":
            values.update(status="resolved", resolved_at=at)
            self.pages.pop(key or "", None)
            acknowledged = values.get("acknowledged_at", row.acknowledged_at)
            self.conn.execute(update(charges).where(
                charges.c.source == "page", charges.c.item_id == str(row.id)).values(
                hours=page_hours(acknowledged, at)))
        if values:
            self.conn.execute(update(escalations).where(escalations.c.id == row.id)
                              .values(**values))

    def _charge(self, week: date, who: ItemId, hours: float, decision_id: int) -> None:
        total, charged = self._week(week)
        if who in charged:
            return
        self._upsert(charges, dict(week_start=week, source=who[0], item_id=who[1], hours=hours,
                                   decision_id=decision_id), ("week_start", "source", "item_id"))
        charged.add(who)
        self.weeks[week] = (total + hours, charged)

    def _insert_decision(self, event: Event, d: Decision, event_at: datetime, now: datetime,
                         origin: Origin) -> int:
        item, ref = event.item, event.ref
        result = self.conn.execute(decisions.insert().values(
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
            assigner=d.assigner).returning(decisions.c.id))
        return int(result.scalar_one())

    def _save_item(self, event: Event, decision: Decision, newer: bool, now: datetime) -> None:
        item = event.item
        assert item is not None
        me = (item.source, item.id)
        base = self.item_rows.pop(me) if me in self.item_rows else self.load(*me)[1]
        history = orjson.dumps(history_to_json(remember(base, event, decision))).decode()
        values: dict[str, Any] = dict(source=item.source, item_id=item.id, key=item.key,
                                      state=item_to_json(item), history=history, updated_at=now)
        columns = ("key", "state", "history", "updated_at") if newer else ("history", "updated_at")
        self._upsert(items, values, ("source", "item_id"), columns)

    def _join(self, key: str, item: WorkItem, now: datetime) -> None:
        page = self.pages.get(key)
        if page is None:
            return
        page.members.add((item.source, item.id))
        self._upsert(escalation_items, dict(escalation_id=page.id, source=item.source,
                                            item_id=item.id, item_key=item.key, open=True,
                                            joined_at=now),
                     ("escalation_id", "source", "item_id"), ("open",))

    def _arm(self, item: WorkItem, due: dict[str, datetime]) -> None:
        """Arm the pending timers; disarm the item's others (their match stopped holding)."""
        self.conn.execute(update(timers).where(
            timers.c.source == item.source, timers.c.item_id == item.id, timers.c.armed,
            timers.c.trigger_id.not_in(list(due)) if due else true()).values(armed=False))
        for trigger, at in due.items():
            self._upsert(timers, dict(source=item.source, item_id=item.id, trigger_id=trigger,
                                      due_at=at, armed=True),
                         ("source", "item_id", "trigger_id"), ("due_at", "armed"))

    def _upsert(self, table: Table, values: dict[str, Any], keys: tuple[str, ...],
                update_cols: tuple[str, ...] = ()) -> None:
        dialect_insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        stmt = dialect_insert(table).values(**values)
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        self.conn.execute(stmt)



"""Record what was decided: items, decisions, timers, escalations and cap charges.

The tables live in `router.store.metadata` beside the inbox (migration 0002). The ledger
rules are `router.ledger.effects`; `DbLedger` applies them to these tables exactly as
`MemoryLedger` does in memory, inside the worker's transaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    Float,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    func,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from router.durations import week_start
from router.history import history_from_json, history_to_json, remember
from router.ledger import DEFAULT_PAGE_HOURS, effects
from router.model import Decision, Event, History, WorkItem
from router.scope import Scope
from router.store import BigId, UTCDateTime, metadata

items = Table(
    "items", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("key", String(255), nullable=False),
    Column("state", Text, nullable=False),  # the newest WorkItem, as JSON
    Column("history", Text, nullable=False),  # router.history.history_to_json
    Column("updated_at", UTCDateTime, nullable=False),
    UniqueConstraint("source", "item_id"),
)

decisions = Table(
    "decisions", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("inbox_id", BigId, nullable=True, unique=True),  # one decision per delivery
    Column("timer_key", String(400), nullable=True, unique=True),  # one per timer firing
    Column("delivery_id", String(255), nullable=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=True),
    Column("item_key", String(255), nullable=True),
    Column("event_type", String(100), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("owner", String(100), nullable=True),
    Column("scope_line", Text, nullable=True),
    Column("severity", String(8), nullable=True),
    Column("triggers", Text, nullable=False),  # JSON list of trigger ids that fired
    Column("reason", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("actions", Text, nullable=False),
    Column("scope_hash", String(64), nullable=False),
    Column("event_at", UTCDateTime, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False),
    Column("cap_hours", Float, nullable=False, server_default="0"),
    Column("exception", Boolean, nullable=False, server_default="0"),
    Column("handed_back", Boolean, nullable=False, server_default="0"),
    Column("assigner", String(255), nullable=True),
    Index(None, "event_at"),
    Index(None, "source", "item_key"),
)

timers = Table(
    "timers", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("source", String(16), nullable=False),
    Column("item_id", String(255), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("armed", Boolean, nullable=False),
    UniqueConstraint("source", "item_id", "trigger_id"),
    Index(None, "armed", "due_at"),
)

escalations = Table(
    "escalations", metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("dedup_key", String(400), nullable=False),
    Column("trigger_id", String(100), nullable=False),
    Column("status", String(16), nullable=False),  # open | resolved
    Column("decision_id", BigId, nullable=False),
    Column("paged_at", UTCDateTime, nullable=False),
    Column("acknowledged_at", UTCDateTime, nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Index(None, "dedup_key", "status"),
    Index(None, "paged_at"),
)

escalation_items = Table(
    "escalation_items", metadata,
    Column("escalation_id", BigId, primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("item_key", String(255), nullable=False),
    Column("open", Boolean, nullable=False),
    Column("joined_at", UTCDateTime, nullable=False),
)

charges = Table(
    "charges", metadata,
    Column("week_start", Date, primary_key=True),
    Column("source", String(16), primary_key=True),
    Column("item_id", String(255), primary_key=True),
    Column("hours", Float, nullable=False),
    Column("decision_id", BigId, nullable=False),
)


def item_to_json(item: WorkItem) -> str:
    data = asdict(item)
    data["labels"] = sorted(item.labels)
    data["project_aliases"] = sorted(item.project_aliases)
    return orjson.dumps(data).decode()


def item_from_json(text: str) -> WorkItem:
    data: dict[str, Any] = orjson.loads(text)
    for name in ("created_at", "updated_at", "reopened_at"):
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    data["labels"] = frozenset(data["labels"])
    data["project_aliases"] = frozenset(data["project_aliases"])
    data["assignees"] = tuple(data["assignees"])
    return WorkItem(**data)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a decision came from: a stored delivery, or a timer that came due."""

    inbox_id: int | None = None
    delivery_id: str | None = None
    timer_key: str | None = None


class DbLedger:
    """The ledger in the database, used inside one worker transaction."""

    def __init__(self, conn: Connection, scope: Scope) -> None:
        self.conn = conn
        self.scope = scope

    def load(self, source: str, item_id: str) -> tuple[WorkItem | None, History]:
        row = self.conn.execute(select(items.c.state, items.c.history).where(
            items.c.source == source, items.c.item_id == item_id)).first()
        if row is None:
            return None, History()
        return item_from_json(row.state), history_from_json(orjson.loads(row.history))

    def history(self, source: str, item_id: str, base: History, now: datetime) -> History:
        """Join an item's own history with the ledger's facts as of `now`."""
        c = self.conn
        open_keys = {r[0] for r in c.execute(
            select(escalations.c.dedup_key).where(escalations.c.status == "open"))}
        mine = c.execute(select(escalations.c.id, escalations.c.dedup_key).join(
            escalation_items, escalation_items.c.escalation_id == escalations.c.id).where(
            escalations.c.status == "open", escalation_items.c.open.is_(True),
            escalation_items.c.source == source, escalation_items.c.item_id == item_id)).all()
        member_of = {}
        for esc_id, key in mine:
            others = c.execute(select(func.count()).where(
                escalation_items.c.escalation_id == esc_id, escalation_items.c.open.is_(True),
                ~and_(escalation_items.c.source == source,
                      escalation_items.c.item_id == item_id))).scalar_one()
            member_of[key] = int(others)
        week = week_start(now, self.scope.tz, self.scope.week_starts)
        charged = c.execute(select(charges.c.hours).where(
            charges.c.week_start == week, charges.c.source == source,
            charges.c.item_id == item_id)).first()
        return replace(
            base, member_of=member_of, open_pages=frozenset(open_keys),
            cap_used_hours=self.week_hours(week), charged_this_week=charged is not None,
            pages_last_hour=int(c.execute(select(func.count()).where(
                escalations.c.paged_at > now - timedelta(hours=1))).scalar_one()))

    def week_hours(self, week: date) -> float:
        """Return the CTO hours already used in a week: charges plus escalations."""
        c = self.conn
        charged = c.execute(select(func.coalesce(func.sum(charges.c.hours), 0.0)).where(
            charges.c.week_start == week)).scalar_one()
        tz, start = self.scope.tz, self.scope.week_starts
        paged = c.execute(select(escalations.c.paged_at, escalations.c.acknowledged_at,
                                 escalations.c.resolved_at).where(
            escalations.c.paged_at >= datetime.combine(week - timedelta(days=1),
                                                       datetime.min.time(), tzinfo=tz),
            escalations.c.paged_at < datetime.combine(week + timedelta(days=8),
                                                      datetime.min.time(), tzinfo=tz)))
        pages = sum(page_hours(ack, done) for at, ack, done in paged
                    if week_start(at, tz, start) == week)
        return float(charged) + pages

    def record(self, event: Event, decision: Decision, history: History, now: datetime,
               origin: Origin) -> int:
        """Store the decision and apply its effects; return the decision's id."""
        item = event.item
        event_at = event.occurred_at or now
        decision_id = self._insert_decision(event, decision, event_at, now, origin)
        if item is None:
            return decision_id
        change = effects(event, decision, history)
        self._save_item(event, decision, change.newer_state, now)
        for page in change.opened:
            self.conn.execute(escalations.insert().values(
                dedup_key=page.dedup_key, trigger_id=page.trigger, status="open",
                decision_id=decision_id, paged_at=now))
        for key in change.joined:
            self._join(key, item, now)
        for key in change.resolved:
            self.conn.execute(update(escalations).where(
                escalations.c.dedup_key == key, escalations.c.status == "open").values(
                status="resolved", resolved_at=now))
        if change.leaves_pages:
            self.conn.execute(update(escalation_items).where(
                escalation_items.c.source == item.source,
                escalation_items.c.item_id == item.id).values(open=False))
        if change.charge_hours:
            week = week_start(now, self.scope.tz, self.scope.week_starts)
            self._upsert(charges, dict(week_start=week, source=item.source, item_id=item.id,
                                       hours=change.charge_hours, decision_id=decision_id),
                         ("week_start", "source", "item_id"), update_cols=())
        self._arm(item, dict(change.timers))
        return decision_id

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
        old = self.conn.execute(select(items.c.state, items.c.history).where(
            items.c.source == item.source, items.c.item_id == item.id)).first()
        base = history_from_json(orjson.loads(old.history)) if old else History()
        state = item_to_json(item) if newer or old is None else old.state
        history = orjson.dumps(history_to_json(remember(base, event, decision))).decode()
        self._upsert(items, dict(source=item.source, item_id=item.id, key=item.key,
                                 state=state, history=history, updated_at=now),
                     ("source", "item_id"), update_cols=("key", "state", "history", "updated_at"))

    def _join(self, key: str, item: WorkItem, now: datetime) -> None:
        esc_id = self.conn.execute(select(escalations.c.id).where(
            escalations.c.dedup_key == key, escalations.c.status == "open")).scalar()
        if esc_id is not None:
            self._upsert(escalation_items, dict(escalation_id=esc_id, source=item.source,
                                                item_id=item.id, item_key=item.key, open=True,
                                                joined_at=now),
                         ("escalation_id", "source", "item_id"), update_cols=("open",))

    def _arm(self, item: WorkItem, due: dict[str, datetime]) -> None:
        """Arm the pending timers; disarm the item's others (their match stopped holding)."""
        self.conn.execute(update(timers).where(
            timers.c.source == item.source, timers.c.item_id == item.id,
            timers.c.trigger_id.not_in(list(due)) if due else true()).values(armed=False))
        for trigger, at in due.items():
            self._upsert(timers, dict(source=item.source, item_id=item.id, trigger_id=trigger,
                                      due_at=at, armed=True),
                         ("source", "item_id", "trigger_id"), update_cols=("due_at", "armed"))

    def _upsert(self, table: Table, values: dict[str, Any], keys: tuple[str, ...],
                update_cols: tuple[str, ...]) -> None:
        dialect_insert = pg_insert if self.conn.dialect.name == "postgresql" else sqlite_insert
        stmt = dialect_insert(table).values(**values)
        if update_cols:
            stmt = stmt.on_conflict_do_update(
                index_elements=list(keys), set_={c: stmt.excluded[c] for c in update_cols})
        else:
            stmt = stmt.on_conflict_do_nothing(index_elements=list(keys))
        self.conn.execute(stmt)


def page_hours(acknowledged: datetime | None, resolved: datetime | None) -> float:
    """Return an escalation's CTO time: acknowledged to resolved, else the default hour."""
    if acknowledged and resolved and resolved >= acknowledged:
        return (resolved - acknowledged).total_seconds() / 3600.0
    return DEFAULT_PAGE_HOURS


"""Multi-row writes (router.db.bulk), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select

from router.db.bulk import insert_returning_ids, insert_rows
from router.db.tables import charges, decisions, items, timers

AT = datetime(2026, 11, 22, 9, 30, 15, 123456, tzinfo=UTC)
# What JSON, SQL and Python each treat specially, inside one value.
AWKWARD = 'quote " backslash \\ newline \n tab \t unicode é 💥 {"json": [1]} \'; --'


def decision(n: int, **changes: object) -> dict[str, object]:
    row: dict[str, object] = dict(
        inbox_id=1000 + n, timer_key=None, delivery_id=f"d{n}", source="github",
        item_id=str(n), item_key=f"acme/api#{n}", event_type="issues", outcome="route",
        owner="support", scope_line=AWKWARD, severity=None, triggers="[]",
        reason=f"reason {n}", evidence='{"k": "v"}', actions="[]", scope_hash="h" * 64,
        event_at=AT, decided_at=AT, cap_hours=0.25, exception=False, handed_back=True,
        assigner=None)
    row.update(changes)
    return row


def test_ids_come_back_in_the_order_rows_were_given(engine: Engine) -> None:
    rows = [decision(n, reason=f"row {n}") for n in range(30)]
    with engine.begin() as conn:
        ids = insert_returning_ids(conn, decisions, rows)
        stored = dict(conn.execute(select(decisions.c.id, decisions.c.reason)).all())
    assert len(set(ids)) == 30
    assert [stored[i] for i in ids] == [f"row {n}" for n in range(30)]


def test_values_of_every_kind_come_back_as_written(engine: Engine) -> None:
    eastern = timezone(timedelta(hours=-5))
    with engine.begin() as conn:
        [one] = insert_returning_ids(conn, decisions, [decision(
            1, event_at=AT.astimezone(eastern), severity="SEV1", assigner="ann")])
        row = conn.execute(select(decisions).where(decisions.c.id == one)).one()
    assert row.scope_line == AWKWARD
    assert row.event_at == AT  # the same instant, given in another offset
    assert (row.decided_at, row.cap_hours, row.exception, row.handed_back) == (
        AT, 0.25, False, True)
    assert (row.timer_key, row.severity, row.assigner) == (None, "SEV1", "ann")


def test_columns_not_given_take_their_defaults(engine: Engine) -> None:
    row = decision(2)
    for column in ("cap_hours", "exception", "handed_back"):
        del row[column]
    with engine.begin() as conn:
        [one] = insert_returning_ids(conn, decisions, [row])
        stored = conn.execute(select(decisions).where(decisions.c.id == one)).one()
    assert (stored.cap_hours, stored.exception, stored.handed_back) == (0, False, False)


def test_a_naive_datetime_is_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive"), engine.begin() as conn:
        insert_returning_ids(conn, decisions, [decision(3, event_at=datetime(2026, 11, 22))])
    with engine.connect() as conn:
        assert conn.execute(select(decisions.c.id)).all() == []


def test_upsert_overwrites_the_named_columns_of_rows_already_there(engine: Engine) -> None:
    def item(item_id: str, state: str) -> dict[str, object]:
        return dict(source="github", item_id=item_id, key=f"#{item_id}", state=state,
                    history="{}", updated_at=AT)

    upsert = (("source", "item_id"), ("state", "updated_at"))
    with engine.begin() as conn:
        insert_rows(conn, items, [item("1", "old"), item("2", "old")], on_conflict=upsert)
    with engine.begin() as conn:
        insert_rows(conn, items, [item("2", "new"), item("3", "new")], on_conflict=upsert)
        stored = conn.execute(select(items.c.item_id, items.c.state)
                              .order_by(items.c.item_id)).all()
    assert [tuple(r) for r in stored] == [("1", "old"), ("2", "new"), ("3", "new")]


def test_upsert_without_columns_keeps_the_first_row(engine: Engine) -> None:
    week = date(2026, 11, 16)

    def charge(item_id: str, hours: float) -> dict[str, object]:
        return dict(week_start=week, source="github", item_id=item_id, hours=hours,
                    decision_id=1)

    keep = (("week_start", "source", "item_id"), ())
    with engine.begin() as conn:
        insert_rows(conn, charges, [charge("1", 0.5)], on_conflict=keep)
        insert_rows(conn, charges, [charge("1", 9.0), charge("2", 1.5)], on_conflict=keep)
        stored = conn.execute(select(charges.c.week_start, charges.c.item_id, charges.c.hours)
                              .order_by(charges.c.item_id)).all()
    assert [tuple(r) for r in stored] == [(week, "1", 0.5), (week, "2", 1.5)]


def test_no_rows_write_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        assert insert_returning_ids(conn, decisions, []) == []
        insert_rows(conn, timers, [])
        assert conn.execute(select(timers.c.id)).all() == []

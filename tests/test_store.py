"""The inbox table and its queries, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, select

from router.db.group_commit import InboxWriter, StorageUnavailable
from router.db.inbox import (
    INSERT_CHUNK,
    Delivery,
    Stored,
    count_inbox,
    insert_deliveries,
    insert_delivery,
)
from router.db.tables import inbox, metadata


def delivery(delivery_id: str, at: datetime | None = None) -> Delivery:
    return Delivery(
        source="github", delivery_id=delivery_id, event_type="issues",
        headers='{"x-github-event": "issues"}', body=b'{"action": "opened"}',
        received_at=at or datetime.now(UTC),
    )


def test_the_migrations_create_exactly_the_tables_the_code_describes(engine: Engine) -> None:
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []


def test_insert_tells_new_rows_from_duplicates_within_and_across_batches(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        first = insert_deliveries(conn, [delivery("a"), delivery("b"), delivery("a")])
    with engine.begin() as conn:
        second = insert_deliveries(conn, [delivery("b"), delivery("c")])
        single = insert_delivery(conn, delivery("c"))
    assert [s.status for s in first] == ["accepted", "accepted", "duplicate"]
    assert [s.status for s in second] == ["duplicate", "accepted"]
    assert single == Stored("duplicate")
    with engine.connect() as conn:
        ids = list(conn.execute(select(inbox.c.id).order_by(inbox.c.id)).scalars())
    assert ids == [first[0].id, first[1].id, second[1].id]


def test_a_batch_larger_than_one_statement_is_stored_whole(engine: Engine) -> None:
    batch = [delivery(f"d{i}") for i in range(INSERT_CHUNK * 2 + 7)]
    with engine.begin() as conn:
        results = insert_deliveries(conn, batch + batch[:3])
    assert [r.status for r in results].count("accepted") == len(batch)
    assert len({r.id for r in results if r.id is not None}) == len(batch)


def test_received_at_comes_back_in_utc(engine: Engine) -> None:
    berlin = timezone(timedelta(hours=1))
    sent = datetime(2026, 11, 21, 20, 15, 3, 123456, tzinfo=berlin)
    with engine.begin() as conn:
        insert_delivery(conn, delivery("t", sent))
    with engine.connect() as conn:
        got = conn.execute(select(inbox.c.received_at)).scalar_one()
    assert got == sent and got.utcoffset() == timedelta(0)


def test_a_naive_timestamp_is_refused(engine: Engine) -> None:
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        conn.execute(inbox.insert().values(
            source="github", delivery_id="n", headers="{}", body=b"{}",
            received_at=datetime(2026, 1, 1),
        ))


def test_count_inbox_groups_by_source_and_status(engine: Engine) -> None:
    with engine.begin() as conn:
        insert_deliveries(conn, [delivery("a"), delivery("b")])
        conn.execute(inbox.update().where(inbox.c.delivery_id == "a")
                     .values(status="done"))
        assert count_inbox(conn) == [("github", "done", 1), ("github", "pending", 1)]


def test_the_writer_commits_concurrent_saves_and_answers_each(engine: Engine) -> None:
    async def run() -> list[Stored]:
        writer = InboxWriter(engine)
        try:
            ids = [f"w{i % 150}" for i in range(300)]
            return await asyncio.gather(*(writer.save(delivery(i)) for i in ids))
        finally:
            await writer.aclose()

    results = asyncio.run(run())
    accepted = [r.id for r in results if r.status == "accepted"]
    assert len(accepted) == 150 == len(set(accepted))
    with engine.connect() as conn:
        assert sorted(conn.execute(select(inbox.c.id)).scalars()) == sorted(accepted)


def test_the_writer_reports_an_unreachable_database(unreachable_pg_url: str) -> None:
    from router.db.engine import make_engine

    async def run() -> None:
        writer = InboxWriter(make_engine(unreachable_pg_url))
        try:
            with pytest.raises(StorageUnavailable):
                await writer.save(delivery("x"))
        finally:
            await writer.aclose()

    asyncio.run(run())


def test_the_sqlite_wal_stays_bounded_under_sustained_writes(tmp_path: Path) -> None:
    # Back-to-back batches leave a PASSIVE checkpoint no moment to finish, so without
    # the TRUNCATE checkpoint the WAL would only ever grow (measured: to the size of
    # everything written).
    from router.db.engine import make_engine, upgrade
    from router.db.group_commit import WAL_TRUNCATE_BYTES

    url = f"sqlite:///{tmp_path / 'wal.db'}"
    upgrade(url)
    engine = make_engine(url)
    body = (Path(__file__).parent / "fixtures/vendor/github/issues.opened.json").read_bytes()
    wal = tmp_path / "wal.db-wal"
    sizes: list[int] = []

    async def run() -> None:
        writer = InboxWriter(engine)
        try:
            for wave in range(320):
                rows = [Delivery("github", f"{wave}-{i}", "issues", "{}", body,
                                       datetime.now(UTC)) for i in range(20)]
                await asyncio.gather(*(writer.save(row) for row in rows))
                sizes.append(wal.stat().st_size)
        finally:
            await writer.aclose()

    asyncio.run(run())
    engine.dispose()
    written = 320 * 20 * len(body)
    assert written > 4 * WAL_TRUNCATE_BYTES
    assert any(b < a for a, b in itertools.pairwise(sizes)), "the WAL was never truncated"
    assert max(sizes) < written

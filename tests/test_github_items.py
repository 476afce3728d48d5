"""A GitHub pull request is one item, whichever event names it (SPEC §3 as amended).

`pull_request` events carry `pull_request.id`, an `issue_comment` on the same pull
request carries the different `issue.id`; both carry the repository id and the number,
which key the item. Tested through the worker on SQLite and PostgreSQL with the real
`pull_request.opened` and `issue_comment.created` moved onto that pull request.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import orjson
import pytest
from sqlalchemy import Connection, Engine, select, update

from adapters import github
from router.core.history import history_from_json, history_to_json
from router.core.model import History, WorkItem
from router.db.engine import make_engine, pending_migrations, upgrade, worker_engine
from router.db.inbox import Delivery, insert_delivery
from router.db.item_json import item_from_json, item_to_json
from router.db.tables import (
    charges,
    decisions,
    escalation_items,
    escalations,
    inbox,
    items,
    outbox,
    timers,
)
from router.work.worker import Worker
from tests.support import example_scope, fixture_bytes, github_comment_on_pull_request

SCOPE = example_scope()
NOW = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
PR = "186853002#2"  # repository.id # number of the real pull_request.opened
CTO = {"login": "dreyes", "id": 583231, "type": "User"}
PERSON = "ana-support"  # someone other than the CTO


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = worker_engine(db_url)
    yield engine
    engine.dispose()


def deliver(engine: Engine, *deliveries: tuple[str, Any]) -> None:
    """Store GitHub deliveries (event name, body) and let the worker decide them."""
    with engine.begin() as conn:
        for n, (event, body) in enumerate(deliveries):
            insert_delivery(conn, Delivery("github", f"gh-{n}", event, "{}",
                                           orjson.dumps(body), NOW))
    Worker(engine, lambda: SCOPE, lambda: NOW).drain()


def opened(**changes: Any) -> Any:
    payload = orjson.loads(fixture_bytes("github", "pull_request.opened"))
    payload["pull_request"].update(changes)
    return payload


def commented(**changes: Any) -> Any:
    payload = github_comment_on_pull_request()
    payload["issue"].update(changes)
    return payload


def decided(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            select(decisions.c.item_id, decisions.c.outcome, decisions.c.reason)
            .order_by(decisions.c.id))]


def test_a_pull_request_and_a_comment_on_it_are_one_item_and_page_once(
        engine: Engine) -> None:
    legal = {"name": "legal", "color": "d73a4a", "default": False}
    pr = opened()
    pr["pull_request"]["labels"].append(legal)
    comment = commented()
    comment["issue"]["labels"].append(legal)
    deliver(engine, ("pull_request", pr), ("issue_comment", comment))
    got = decided(engine)
    assert [outcome for _, outcome, _ in got] == ["escalate", "escalate"]
    assert "already part of the open page" in got[1][2]
    with engine.connect() as conn:
        pages = conn.execute(select(outbox.c.item).where(outbox.c.type == "page")).all()
        assert conn.execute(select(escalations.c.dedup_key)).scalars().all() == [
            f"firstline/legal/github:{PR}"]
        assert conn.execute(select(items.c.item_id, items.c.key)).all() == [
            (PR, "Codertocat/Hello-World#2")]
    assert pages == [(f"github:{PR}",)]
    assert [item for item, _, _ in got] == [PR, PR]


def test_a_person_is_not_overruled_twice_across_a_pull_request_and_its_comments(
        engine: Engine) -> None:
    """firstline hands the PR on; the person puts it back to the CTO, as a comment on the
    PR shows: kept, not reassigned again (SPEC §4)."""
    pr = opened(assignees=[CTO], assignee=CTO)
    pr["sender"]["login"] = PERSON
    comment = commented(assignees=[CTO], assignee=CTO)
    comment["sender"]["login"] = PERSON
    deliver(engine, ("pull_request", pr), ("issue_comment", comment))
    got = decided(engine)
    assert [outcome for _, outcome, _ in got] == ["reassign", "keep"]
    assert "not overruled twice" in got[1][2]
    assert [item for item, _, _ in got] == [PR, PR]


# -- the migration (0007 github_item_keys) ----------------------------------------------

T = datetime(2019, 5, 15, 15, 20, 33, tzinfo=UTC)  # when the real pull request was opened
OLD_PR, OLD_THREAD, OLD_ISSUE = "279147437", "444500042", "444500041"  # pull_request.id, ...
NEW_ISSUE = "186853002#1"


def _old_item(body: Any, event: str, old_id: str) -> WorkItem:
    """The item an older firstline stored for a delivery: keyed by the object's own id."""
    item = github.parse(body, event).item
    assert item is not None
    return replace(item, id=old_id)


def _history(newest: datetime, clock: datetime, by: str, handed_away: bool) -> str:
    return orjson.dumps(history_to_json(History(
        newest_at=newest, created_at=T, held_since={"no-owner": clock},
        assigned_by={"dreyes": by}, handed_away=handed_away))).decode()


def _decision(item_id: str) -> dict[str, Any]:
    return dict(source="github", item_id=item_id, item_key="k",
                event_type="e", outcome="keep", triggers="[]", reason="r", evidence="{}",
                actions="[]", scope_hash="h", event_at=T, decided_at=T)


def _action(item_id: str) -> dict[str, Any]:
    target = {"source": "github", "id": item_id, "key": "Codertocat/Hello-World#2",
              "kind": "pull_request", "project": "Codertocat/Hello-World", "url": None}
    return dict(decision_id=1, type="comment", target=orjson.dumps(target).decode(),
                item=f"github:{item_id}", action="{}", status="done", attempts=1, next_at=T,
                created_at=T)


def _old_rows(conn: Connection) -> None:
    """A pull request split in two by an older firstline, an issue, and an item whose
    deliveries retention removed; each as the older firstline stored it."""
    pr, comment = opened(), github_comment_on_pull_request()
    issue = orjson.loads(fixture_bytes("github", "issues.opened"))
    for n, (event, body) in enumerate((("pull_request", pr), ("issue_comment", comment),
                                       ("issues", issue))):
        insert_delivery(conn, Delivery("github", f"old-{n}", event, "{}", orjson.dumps(body), T))
    conn.execute(update(inbox).values(status="done"))  # decided long ago
    later = T + timedelta(seconds=7)
    conn.execute(items.insert(), [
        dict(source="github", item_id=OLD_PR, key="Codertocat/Hello-World#2",
             state=item_to_json(_old_item(pr, "pull_request", OLD_PR)),
             history=_history(T, T, PERSON, True), updated_at=T),
        dict(source="github", item_id=OLD_THREAD, key="Codertocat/Hello-World#2",
             state=item_to_json(_old_item(comment, "issue_comment", OLD_THREAD)),
             history=_history(later, later, "Codertocat", False), updated_at=later),
        dict(source="github", item_id=OLD_ISSUE, key="Codertocat/Hello-World#1",
             state=item_to_json(_old_item(issue, "issues", OLD_ISSUE)),
             history=_history(T, T, PERSON, False), updated_at=T),
        dict(source="github", item_id="999", key="gone/repo#9", state="{}", history="{}",
             updated_at=T)])
    conn.execute(decisions.insert(), [_decision(i) for i in (
        OLD_PR, OLD_THREAD, OLD_PR, OLD_ISSUE, "999")])
    conn.execute(timers.insert(), [
        dict(source="github", item_id=OLD_PR, trigger_id="no-owner", due_at=later,
             armed=True),
        dict(source="github", item_id=OLD_THREAD, trigger_id="no-owner", due_at=T,
             armed=True),
        dict(source="github", item_id=OLD_THREAD, trigger_id="release-blocked", due_at=T,
             armed=False)])
    conn.execute(escalation_items.insert(), [
        dict(escalation_id=1, source="github", item_id=OLD_PR, item_key="k", open=False,
             joined_at=T),
        dict(escalation_id=1, source="github", item_id=OLD_THREAD, item_key="k", open=True,
             joined_at=later),
        dict(escalation_id=2, source="github", item_id=OLD_THREAD, item_key="k", open=True,
             joined_at=later)])
    week = date(2019, 5, 13)
    conn.execute(charges.insert(), [
        dict(week_start=week, source="github", item_id=OLD_PR, hours=1.0, decision_id=1),
        dict(week_start=week, source="github", item_id=OLD_THREAD, hours=1.0, decision_id=2),
        dict(week_start=week, source="page", item_id="1", hours=1.0, decision_id=1)])
    conn.execute(outbox.insert(), [_action(OLD_PR), _action(OLD_THREAD), _action("999")])


def test_the_migration_merges_a_split_pull_request_and_renames_the_rest(
        empty_db_url: str) -> None:
    upgrade(empty_db_url, "0006")
    engine = make_engine(empty_db_url)
    try:
        with engine.begin() as conn:
            _old_rows(conn)
        upgrade(empty_db_url)
        with engine.connect() as conn:
            stored = {r.item_id: r for r in conn.execute(select(items))}
            assert sorted(stored) == sorted([PR, NEW_ISSUE, "999"])
            state = item_from_json(stored[PR].state)
            assert (state.id, state.kind, state.updated_at) == (
                PR, "pull_request", T + timedelta(seconds=7))  # the newer half's state
            history = history_from_json(orjson.loads(stored[PR].history))
            assert history.handed_away  # the older half was handed away: not again
            assert (history.newest_at, history.created_at) == (T + timedelta(seconds=7), T)
            assert history.held_since == {"no-owner": T}  # the clock started first
            assert history.assigned_by == {"dreyes": "Codertocat"}  # the newer half's word
            assert item_from_json(stored[NEW_ISSUE].state).id == NEW_ISSUE
            assert conn.execute(select(decisions.c.item_id).order_by(decisions.c.id)
                                ).scalars().all() == [PR, PR, PR, NEW_ISSUE, "999"]
            assert sorted(conn.execute(select(timers.c.item_id, timers.c.trigger_id,
                                              timers.c.due_at, timers.c.armed)).all()) == [
                (PR, "no-owner", T, True), (PR, "release-blocked", T, False)]
            assert sorted(conn.execute(select(
                escalation_items.c.escalation_id, escalation_items.c.item_id,
                escalation_items.c.open, escalation_items.c.joined_at)).all()) == [
                (1, PR, True, T), (2, PR, True, T + timedelta(seconds=7))]
            assert sorted(conn.execute(select(charges.c.source, charges.c.item_id,
                                              charges.c.hours)).all()) == [
                ("github", PR, 1.0), ("page", "1", 1.0)]
            actions = conn.execute(select(outbox.c.item, outbox.c.target)
                                   .order_by(outbox.c.id)).all()
            assert [a.item for a in actions] == [f"github:{PR}", f"github:{PR}", "github:999"]
            assert [orjson.loads(a.target)["id"] for a in actions] == [PR, PR, "999"]
        assert not pending_migrations(engine)
    finally:
        engine.dispose()
    _the_merged_item_remembers_the_hand_back(empty_db_url)


def _the_merged_item_remembers_the_hand_back(db_url: str) -> None:
    """The person puts the migrated PR back to the CTO: not overruled a second time."""
    engine = worker_engine(db_url)
    try:
        comment = github_comment_on_pull_request(at="2019-05-15T15:25:00Z")
        comment["issue"].update(assignees=[CTO], assignee=CTO)
        comment["sender"]["login"] = PERSON
        with engine.begin() as conn:
            insert_delivery(conn, Delivery("github", "new", "issue_comment", "{}",
                                           orjson.dumps(comment), NOW))
        Worker(engine, lambda: SCOPE, lambda: NOW).drain()
        item_id, outcome, reason = decided(engine)[-1]
        assert (item_id, outcome) == (PR, "keep") and "not overruled twice" in reason
        with engine.connect() as conn:
            assert conn.execute(select(items.c.item_id).where(
                items.c.key == "Codertocat/Hello-World#2")).scalars().all() == [PR]
    finally:
        engine.dispose()

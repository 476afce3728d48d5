"""A kept monthly review (router.reviews.kept) is the one computed, until a record it read
changes; then it is computed again. Never staler than the records, on SQLite and
PostgreSQL.

The seeded November (tests/seeded_month.py) is read over HTTP, then December brings
what changes a past month's review: a late delivery about November, the acknowledgement
and resolution of a page November opened, an item of November's catch-all work
relabelled, and an edited scope note. After each, the API's review must equal one
computed afresh from the records, and the figure the change moves must have moved.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from router.db.engine import make_engine
from router.db.pages import Watched, record_outcomes
from router.db.tables import escalation_items, escalations
from router.reviews.kept import MonthReview, month_review
from router.reviews.monthly import EscalationFigure, monthly_report
from router.reviews.periods import month_span
from router.reviews.render import monthly_json
from router.scope.load import Scope, load_scope
from router.work.backfill import catch_up
from tests.seeded_month import (
    MONTH,
    SeededMonth,
    jira,
    local,
    month_database,
    pagerduty,
    seeded,
    send,
)

JSON = {"Authorization": "Bearer x", "Accept": "application/json"}


@pytest.fixture(params=["sqlite", "postgresql"])
def november(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) \
        -> Iterator[tuple[SeededMonth, str]]:
    with month_database(request.param, tmp_path_factory) as url, \
            seeded(url, tmp_path_factory.mktemp("rules")) as month:
        yield month, url


def test_a_kept_review_is_recomputed_whenever_a_record_it_read_changes(
        november: tuple[SeededMonth, str]) -> None:
    month, url = november
    scope = load_scope(month.rules)[0]
    span = month_span(2026, 11, scope.tz, scope.week_starts)
    engine = make_engine(url)

    def api() -> dict[str, Any]:
        answer = month.client.get(f"/api/v1/reports/monthly?month={MONTH}", headers=JSON)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def fresh(note: Scope = scope) -> dict[str, Any]:
        with engine.connect() as conn:
            return monthly_json(monthly_report(conn, note, span))

    def december(*deliveries: Any) -> None:
        for d in deliveries:
            catch_up(month.worker, month.clock, d.at)
            send(month.client, d)
            month.worker.drain()

    try:
        before = api()
        assert before == fresh()
        with engine.connect() as conn:
            first = month_review(conn, scope, span)
            assert month_review(conn, scope, span) is first  # nothing changed: kept
            page_key = conn.execute(select(escalations.c.dedup_key).where(
                escalations.c.trigger_id == "release-blocked")).scalar_one()

        # A late delivery about 20 November, decided on 3 December.
        december(jira(117, "2026-11-20 10:00", ["bug"]))
        after_late = api()
        assert after_late == fresh()
        assert sum(after_late["decisions"].values()) == sum(before["decisions"].values()) + 1

        # November's open release-blocked page, acknowledged and resolved in December.
        december(pagerduty("incident.acknowledged", "2026-12-03 10:00", incident="PLATE01",
                           key=page_key),
                 pagerduty("incident.resolved", "2026-12-03 10:30", incident="PLATE01",
                           key=page_key))
        after_page = api()
        assert after_page == fresh()
        timed = after_page["escalations"]["items"][-1]
        assert (timed["trigger"], timed["status"], timed["cto_minutes"]) == (
            "release-blocked", "resolved", 30.0)

        # OPS-114, November's catch-all work, relabelled in December: November's review
        # groups it as the note saw it then.
        december(jira(114, "2026-12-03 11:00", ["docs"], created="2026-11-26 08:00",
                      event="jira:issue_updated"))
        after_label = api()
        assert after_label == fresh()
        assert after_label["catch_all"] == after_page["catch_all"]
        assert "docs" not in after_label["catch_all"]["by_label"]

        # An edited note: its own review, not the kept one of the old note.
        note = yaml.safe_load(month.rules.read_text())
        note["cap"]["ad_hoc_hours_per_week"] = 10
        edited = month.rules.parent / "scope-edited.yaml"
        edited.write_text(yaml.safe_dump(note, sort_keys=False))
        wider = load_scope(edited)[0]
        with engine.connect() as conn:
            kept = month_review(conn, scope, span)
            assert month_review(conn, scope, span) is kept
            other = month_review(conn, wider, span)
            assert other is not kept
            assert monthly_json(other.report) == fresh(wider)
            assert other.report.cap_hours_per_week == 10.0
    finally:
        engine.dispose()


def test_a_page_given_up_and_an_item_joining_after_the_month_change_its_review(
        november: tuple[SeededMonth, str]) -> None:
    """Changes no decision and no charge records: the performer giving up November's
    open page (its escalation closes: only its revision tells) and an item joining that
    escalation later."""
    month, url = november
    scope = load_scope(month.rules)[0]
    span = month_span(2026, 11, scope.tz, scope.week_starts)
    engine = make_engine(url)

    def timed(review: MonthReview) -> EscalationFigure:
        return next(e for e in review.report.escalations if e.trigger == "release-blocked")

    try:
        with engine.connect() as conn:
            kept = month_review(conn, scope, span)
            page = conn.execute(select(escalations).where(
                escalations.c.trigger_id == "release-blocked")).one()
        assert timed(kept).status == "open"
        with engine.begin() as conn:
            record_outcomes(conn, [Watched(0, page.decision_id, "page", done=False)],
                            local("2026-12-03 12:00"))
        with engine.connect() as conn:
            closed = month_review(conn, scope, span)
            assert timed(closed).status == "closed"
            assert closed.report == monthly_report(conn, scope, span)
        with engine.begin() as conn:
            conn.execute(escalation_items.insert().values(
                escalation_id=page.id, source="jira", item_id="30118", item_key="OPS-118",
                open=False, joined_at=local("2026-12-03 12:30")))
        with engine.connect() as conn:
            joined = month_review(conn, scope, span)
            assert timed(joined).items == ("OPS-110", "OPS-118")
            assert joined.report == monthly_report(conn, scope, span)
    finally:
        engine.dispose()


def test_the_migration_gives_existing_decisions_their_items_project_labels_and_reporter(
        empty_db_url: str) -> None:
    """Decisions from before revision 0013 take their item's newest state: what the
    review showed for them until then."""
    import sqlalchemy as sa

    from router.db.engine import upgrade
    from router.db.tables import decisions

    upgrade(empty_db_url, "0012")
    engine = make_engine(empty_db_url)
    at = local("2026-11-02 10:00")
    old_items = sa.table("items", *(sa.column(c) for c in (
        "source", "item_id", "key", "state", "history", "updated_at")))
    old_decisions = sa.table("decisions", *(sa.column(c) for c in (
        "source", "item_id", "event_type", "outcome", "triggers", "reason", "evidence",
        "actions", "scope_hash", "event_at", "decided_at")))
    states = {"30101": {"project": "OPS", "labels": ["vendor", "billing"],
                        "reporter": "61e0a1b2c3d4e5f601234567"},
              "30102": {"project": "WEB", "labels": [], "reporter": None}}
    try:
        with engine.begin() as conn:
            for item_id, state in states.items():
                conn.execute(old_items.insert().values(
                    source="jira", item_id=item_id, key=f"OPS-{item_id[-3:]}",
                    state=json.dumps(state), history="{}", updated_at=at))
            for item_id in ("30101", "30101", "30102", None):
                conn.execute(old_decisions.insert().values(
                    source="jira", item_id=item_id, event_type="jira:issue_created",
                    outcome="keep", triggers="[]", reason="", evidence="{}", actions="[]",
                    scope_hash="x", event_at=at, decided_at=at))
        upgrade(empty_db_url)
        with engine.connect() as conn:
            rows = conn.execute(select(decisions.c.item_id, decisions.c.project,
                                       decisions.c.labels, decisions.c.reporter)
                                .order_by(decisions.c.id)).all()
    finally:
        engine.dispose()
    assert [tuple(r) for r in rows] == [
        ("30101", "OPS", '["billing","vendor"]', "61e0a1b2c3d4e5f601234567"),
        ("30101", "OPS", '["billing","vendor"]', "61e0a1b2c3d4e5f601234567"),
        ("30102", "WEB", None, None),
        (None, None, None, None)]

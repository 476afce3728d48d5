"""Retention (router.db.prune, `firstline db prune`): old raw deliveries and finished
actions go, in batches; what an open or recently resolved escalation needs stays.

The rows are made the real way, signed deliveries through the app and the worker in
shadow mode, and then aged by moving their timestamps back.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, update

from router.cli.main import main
from router.db.prune import prune
from router.db.tables import decisions, escalations, inbox, outbox
from router.http.app import create_app
from router.service import build_service
from router.settings import Settings
from tests.support import EXAMPLE_SCOPE, decide_stored
from tests.test_pages import login
from tests.vendors import SECRETS, VENDOR, signed_headers

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=500)


def jira_issue(n: int, labels: list[str]) -> bytes:
    payload = json.loads((VENDOR / "jira" / "issue_created.json").read_bytes())
    issue = payload["issue"]
    issue["id"], issue["key"] = str(90000 + n), f"TES-{900 + n}"
    issue["fields"]["labels"] = labels
    now = datetime.now(UTC)  # not the module's NOW: an hour-old issue would meet timed triggers
    issue["fields"]["created"] = issue["fields"]["updated"] = now.isoformat()
    payload["timestamp"] = int(now.timestamp() * 1000) + n
    return json.dumps(payload).encode()


def receive(db_url: str, bodies: list[bytes]) -> None:
    """Store signed deliveries through the app and decide them with the worker."""
    settings = Settings(database_url=db_url, rules=EXAMPLE_SCOPE,
                        jira_webhook_secret=SECRETS["jira"])
    with TestClient(create_app(settings)) as client:
        for n, body in enumerate(bodies):
            answer = client.post("/webhooks/jira", content=body, headers=signed_headers(
                "jira", body, "jira:issue_created", f"delivery-{n}"))
            assert answer.status_code == 202
    assert decide_stored(db_url) == len(bodies)


def age_everything(engine: Engine, to: datetime) -> None:
    with engine.begin() as conn:
        conn.execute(update(inbox).values(received_at=to))
        conn.execute(update(outbox).values(created_at=to, done_at=None))


def counts(engine: Engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(inbox)).scalar_one(),
                conn.execute(select(func.count()).select_from(outbox)).scalar_one())


def escalated_item(engine: Engine) -> str:
    with engine.connect() as conn:
        return str(conn.execute(select(decisions.c.item_id).where(
            decisions.c.outcome == "escalate")).scalar_one())


@pytest.fixture
def history(db_url: str, engine: Engine) -> dict[str, Any]:
    """Six issues: one escalates (checkout), five are routine; all 500 days old."""
    receive(db_url, [jira_issue(0, ["checkout"])] + [jira_issue(n, ["bug"]) for n in (1, 2, 3,
                                                                                       4, 5)])
    age_everything(engine, OLD)
    deliveries, actions = counts(engine)
    return {"deliveries": deliveries, "actions": actions, "escalated": escalated_item(engine)}


def test_old_deliveries_and_actions_go_in_batches_and_an_open_escalation_keeps_its_own(
        engine: Engine, history: dict[str, Any]) -> None:
    with engine.connect() as conn:
        kept_actions = conn.execute(select(func.count()).select_from(outbox).where(
            outbox.c.item == f"jira:{history['escalated']}")).scalar_one()
    dry = prune(engine, 400, NOW, dry_run=True, batch=2)
    assert counts(engine) == (history["deliveries"], history["actions"])  # dry: nothing gone
    done = prune(engine, 400, NOW, batch=2)
    assert done == dry
    assert (done.deliveries, done.kept_deliveries) == (5, 1)
    assert (done.actions, done.kept_actions) == (history["actions"] - kept_actions,
                                                 kept_actions)
    assert counts(engine) == (1, kept_actions)
    with engine.connect() as conn:
        assert conn.execute(select(inbox.c.delivery_id)).scalar_one() == "delivery-0"


def test_a_long_resolved_escalation_no_longer_keeps_anything(
        engine: Engine, history: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(update(escalations).values(status="resolved",
                                                resolved_at=NOW - timedelta(days=450)))
    done = prune(engine, 400, NOW)
    assert (done.kept_deliveries, done.kept_actions) == (0, 0)
    assert counts(engine) == (0, 0)


def test_a_recently_resolved_escalation_still_keeps_its_deliveries(
        engine: Engine, history: dict[str, Any]) -> None:
    with engine.begin() as conn:
        conn.execute(update(escalations).values(status="resolved",
                                                resolved_at=NOW - timedelta(days=30)))
    assert prune(engine, 400, NOW).kept_deliveries == 1


def test_recent_pending_and_dead_rows_stay(db_url: str, engine: Engine) -> None:
    receive(db_url, [jira_issue(n, ["bug"]) for n in range(3)])
    with engine.begin() as conn:  # recent ones stay; old pending and dead ones too
        conn.execute(update(inbox).where(inbox.c.delivery_id == "delivery-0").values(
            received_at=OLD, status="pending"))
        first = conn.execute(select(func.min(outbox.c.id))).scalar_one()
        conn.execute(update(outbox).where(outbox.c.id == first).values(
            created_at=OLD, status="dead"))
    before = counts(engine)
    assert prune(engine, 400, NOW).deliveries == 0
    assert counts(engine) == before


def test_db_prune_prints_what_it_would_delete_and_then_deletes_it(
        db_url: str, engine: Engine, history: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FIRSTLINE_DATABASE_URL", db_url)
    assert main(["db", "prune", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("would delete 5 deliveries and ")
    assert "(400 days)" in out and "kept 1 deliveries" in out
    assert counts(engine)[0] == history["deliveries"]
    assert main(["db", "prune"]) == 0
    assert capsys.readouterr().out.startswith("deleted 5 deliveries and ")
    assert counts(engine)[0] == 1
    monkeypatch.setenv("FIRSTLINE_RETENTION_DAYS", "0")
    assert main(["db", "prune"]) == 0
    assert "everything is kept" in capsys.readouterr().out


def test_the_dashboard_shows_a_pruned_decision_by_its_items_newest_state(
        db_url: str, engine: Engine, history: dict[str, Any]) -> None:
    prune(engine, 400, NOW)
    with engine.connect() as conn:
        rows = conn.execute(select(decisions.c.id, decisions.c.item_key,
                                   decisions.c.inbox_id.in_(select(inbox.c.id)))).all()
    assert sorted(kept for _, _, kept in rows) == [False] * 5 + [True]
    settings = Settings(database_url=db_url, rules=EXAMPLE_SCOPE, api_token="prune-operator")
    with TestClient(build_service(settings, run_worker=False)) as client:
        assert login(client, "prune-operator").status_code == 200  # followed to the week
        for decision_id, key, kept in rows:
            page = client.get(f"/decisions/{decision_id}")
            assert page.status_code == 200 and key in page.text
            assert ("the delivery it was decided on is not stored" in page.text) != kept

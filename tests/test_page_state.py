"""Was the CTO actually paged? Each escalation's page state, and the switch from shadow to
enforce: a page that was never sent (shadow mode, or its action dead) is not an open page,
so the first trigger after the switch pages for real (SPEC §4).

The example deliveries go through real HTTP into the app; the worker and performer run as
in the service; the vendors' far ends are stand-ins.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from router.core.ledger import MemoryLedger
from router.core.simulate import Delivery, simulate
from router.db.tables import escalations, outbox
from tests.standin_jira import JiraStandin
from tests.standin_pagerduty import PagerDutyStandIn
from tests.support import EXAMPLE_SCOPE, ROOT, eventually, scope_with
from tests.test_e2e import post, service, settle

EXAMPLES = ROOT / "examples" / "deliveries"
GROUP_KEY = "firstline/revenue-path/OPS"
AUTH = {"Authorization": "Bearer x"}


@pytest.fixture
def jira_standin() -> Iterator[JiraStandin]:
    with JiraStandin() as standin:
        standin.add_issue("OPS-1", "20001")
        standin.add_issue("OPS-2", "20002")
        yield standin


@pytest.fixture
def pd() -> PagerDutyStandIn:
    return PagerDutyStandIn()


def example(name: str) -> Any:
    return orjson.loads((EXAMPLES / "jira" / f"{name}.json").read_bytes())


def write_rules(path: Path, mode: str) -> Path:
    path.write_text(EXAMPLE_SCOPE.read_text().replace("mode: shadow", f"mode: {mode}", 1))
    return path


def escalation_list(client: TestClient, query: str = "") -> list[dict[str, Any]]:
    answer = client.get(f"/api/v1/escalations{query}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["items"])


def wait_for(client: TestClient, what: str, check: Any, query: str = "") \
        -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        listed = escalation_list(client, query)
        return listed if check(listed) else None
    return eventually(found, what)


def page_actions(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(r.decision_id, r.status) for r in conn.execute(
            select(outbox.c.decision_id, outbox.c.status).where(outbox.c.type == "page")
            .order_by(outbox.c.id))]


@pytest.mark.parametrize("switch", ["sighup", "restart"])
def test_the_first_trigger_after_the_switch_to_enforce_pages_for_real(
        switch: str, db_url: str, engine: Engine, tmp_path: Path, jira_standin: JiraStandin,
        pd: PagerDutyStandIn) -> None:
    pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": GROUP_KEY})
    rules = write_rules(tmp_path / "scope.yaml", "shadow")
    client = service(db_url, rules, jira_standin, pd).__enter__()
    try:
        post(client, "jira", "jira:issue_created", example("OPS-1.checkout"), "ops-1")
        [shadow] = wait_for(client, "the shadow escalation", lambda e: len(e) == 1)
        assert (shadow["status"], shadow["page"]["state"], shadow["page"]["sent_at"]) == (
            "open", "shadow", None)
        assert shadow["dedup_key"] == GROUP_KEY
        write_rules(rules, "enforce")
        if switch == "sighup":
            client.app.state.scope.reload()  # what the service's SIGHUP handler calls
        else:
            client.__exit__(None, None, None)
            client = service(db_url, rules, jira_standin, pd).__enter__()
        post(client, "jira", "jira:issue_created", example("OPS-2.checkout"), "ops-2")
        paged = wait_for(client, "a real page for OPS-2",
                         lambda e: len(e) == 2 and e[0]["page"]["state"] == "sent")
        settle(engine, 4)  # the shadow page, then OPS-2's page, comment and assignment
    finally:
        client.__exit__(None, None, None)
    real, old = paged
    assert [i["key"] for i in real["items"]] == ["OPS-2"]
    assert real["status"] == "open" and real["page"]["sent_at"] is not None
    assert (old["id"], old["status"], old["page"]["state"]) == (shadow["id"], "closed", "shadow")
    assert old["closed_at"] is not None
    assert [(r.path, r.body["event_action"], r.body["dedup_key"]) for r in pd.requests] == [
        ("/v2/enqueue", "trigger", GROUP_KEY)]
    assert [s for _, s in page_actions(engine)] == ["shadow", "done"]


def test_a_dead_page_is_not_open_and_says_why(db_url: str, engine: Engine, tmp_path: Path,
                                              jira_standin: JiraStandin,
                                              pd: PagerDutyStandIn) -> None:
    """Enforce mode without a routing key: the page action dies at once, its escalation is
    closed with the reason, and the group's next trigger queues a page of its own."""
    rules = write_rules(tmp_path / "scope.yaml", "enforce")
    with service(db_url, rules, jira_standin, pd, pagerduty_routing_key=None) as client:
        post(client, "jira", "jira:issue_created", example("OPS-1.checkout"), "ops-1")
        [dead] = wait_for(client, "the dead page",
                          lambda e: len(e) == 1 and e[0]["page"]["state"] == "dead")
        post(client, "jira", "jira:issue_created", example("OPS-2.checkout"), "ops-2")
        both = wait_for(client, "a second page, dead too",
                        lambda e: len(e) == 2 and e[0]["page"]["state"] == "dead")
        one = client.get(f"/api/v1/escalations/{dead['id']}", headers=AUTH).json()
    assert dead["status"] == "closed" and dead["page"]["sent_at"] is None
    assert "FIRSTLINE_PAGERDUTY_ROUTING_KEY is not set" in dead["page"]["error"]
    assert one["page"] == dead["page"] and one["status"] == "closed"
    assert [e["items"][0]["key"] for e in both] == ["OPS-2", "OPS-1"]
    assert [s for _, s in page_actions(engine)] == ["dead", "dead"]
    assert pd.requests == []


def test_escalations_filter_by_state_page_trigger_and_since(
        db_url: str, tmp_path: Path, jira_standin: JiraStandin, pd: PagerDutyStandIn) -> None:
    rules = write_rules(tmp_path / "scope.yaml", "shadow")
    with service(db_url, rules, jira_standin, pd) as client:
        post(client, "jira", "jira:issue_created", example("OPS-1.checkout"), "ops-1")
        wait_for(client, "one escalation", lambda e: len(e) == 1)
        write_rules(rules, "enforce")
        client.app.state.scope.reload()
        pd.answer("POST", "/v2/enqueue", 202, {"status": "success", "dedup_key": GROUP_KEY})
        post(client, "jira", "jira:issue_created", example("OPS-2.checkout"), "ops-2")
        wait_for(client, "two", lambda e: len(e) == 2 and e[0]["page"]["state"] == "sent")

        def ids(query: str) -> list[int]:
            return [e["id"] for e in escalation_list(client, query)]

        newest, oldest = ids("")
        assert ids("?state=open") == [newest] and ids("?state=closed") == [oldest]
        assert ids("?state=resolved") == [] and ids("?page=shadow") == [oldest]
        assert ids("?trigger=revenue-path") == [newest, oldest] and ids("?trigger=legal") == []
        assert ids("?since=2000-01-01") == [newest, oldest] and ids("?since=2999-01-01") == []
        first = client.get("/api/v1/escalations?limit=1", headers=AUTH).json()
        assert [e["id"] for e in first["items"]] == [newest]
        rest = client.get(f"/api/v1/escalations?limit=1&cursor={first['next_cursor']}",
                          headers=AUTH).json()
        assert [e["id"] for e in rest["items"]] == [oldest] and rest["next_cursor"] is None
        for query, words in [("?state=gone", "state 'gone'"), ("?page=lost", "page 'lost'"),
                             ("?since=yesterday", "since: 'yesterday' is not a date or time"),
                             ("?since=2026-11-01T09:00:00", "offset"),
                             ("?cursor=abc", "cursor")]:
            answer = client.get(f"/api/v1/escalations{query}", headers=AUTH)
            assert answer.status_code == 400 and words in answer.json()["detail"], query
        assert client.get("/api/v1/escalations/999", headers=AUTH).status_code == 404


def test_replay_agrees_with_the_service_across_the_switch() -> None:
    """The in-memory ledger applies the same rule: shadow pages group in shadow mode and
    stop counting as open once the note is in enforce mode."""
    deliveries = [Delivery(name, _event(name)) for name in ("OPS-1.checkout", "OPS-2.checkout")]
    shadow = scope_with(mode="shadow")
    ledger = MemoryLedger(shadow)
    first = _decide(ledger, deliveries[0])
    assert [a.type for a in first.actions].count("page") == 1
    ledger.scope = scope_with(mode="enforce")  # the note changed under the running service
    second = _decide(ledger, deliveries[1])
    assert [a.dedup_key for a in second.actions if a.type == "page"] == [GROUP_KEY]
    joined = list(simulate(deliveries, shadow))  # all in shadow mode: OPS-2 joins
    assert [a.type for a in joined[1].decision.actions].count("page") == 0


def _event(name: str) -> Any:
    from router.work.normalize import parse_delivery

    raw = (EXAMPLES / "jira" / f"{name}.json").read_bytes()
    return parse_delivery("jira", None, raw, _at(raw))


def _at(raw: bytes) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(orjson.loads(raw)["timestamp"] / 1000, tz=UTC)


def _decide(ledger: MemoryLedger, delivery: Delivery) -> Any:
    from router.core.decide import decide

    event = delivery.event
    assert event.item is not None and event.occurred_at is not None
    history = ledger.history((event.item.source, event.item.id), event.occurred_at)
    decision = decide(event, ledger.scope, history, event.occurred_at)
    ledger.record(event, decision, history, event.occurred_at)
    return decision


def test_the_migration_gives_existing_escalations_their_page_state(empty_db_url: str) -> None:
    """Rows from before the page state: shadow stays open (closed by the first enforce
    batch), a dead page's open escalation is closed, a sent one keeps its time."""
    from datetime import UTC, datetime

    import sqlalchemy as sa

    from router.db.engine import make_engine, upgrade

    upgrade(empty_db_url, "0008")
    engine = make_engine(empty_db_url)
    now = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)
    done_at = datetime(2026, 11, 16, 9, 0, 2, tzinfo=UTC)
    old_escalations = sa.table(  # the columns 0008 has
        "escalations", *(sa.column(c) for c in ("dedup_key", "trigger_id", "status",
                                                "decision_id", "paged_at")))
    try:
        with engine.begin() as conn:
            for n, status in enumerate(["shadow", "dead", "done", "pending"], start=1):
                conn.execute(old_escalations.insert().values(
                    dedup_key=f"firstline/legal/jira:{n}", trigger_id="legal", status="open",
                    decision_id=n, paged_at=now))
                conn.execute(outbox.insert().values(
                    decision_id=n, type="page", target="{}", action="{}", status=status,
                    attempts=1, next_at=now, created_at=now,
                    done_at=done_at if status == "done" else None))
        upgrade(empty_db_url)
        with engine.connect() as conn:
            rows = conn.execute(select(escalations.c.status, escalations.c.page_state,
                                       escalations.c.page_sent_at, escalations.c.closed_at)
                                .order_by(escalations.c.id)).all()
    finally:
        engine.dispose()
    assert [(r.status, r.page_state) for r in rows] == [
        ("open", "shadow"), ("closed", "dead"), ("open", "sent"), ("open", "pending")]
    assert rows[2].page_sent_at == done_at and rows[1].closed_at is not None


@pytest.mark.parametrize("switch", ["sighup", "restart"])
def test_a_running_serve_switched_to_enforce_pages_the_next_trigger(
        switch: str, tmp_path: Path, db_url: str) -> None:
    """`firstline serve` in shadow mode; the note switched to enforce by `kill -HUP`, or
    by stopping serve and starting it again: the next trigger queues a real page. No
    routing key is configured, so it dies at once, and the escalation says so;
    `firstline escalations` shows both."""
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from tests.test_serve import TOKEN, running, start
    from tests.vendors import SECRETS, signed_headers

    def deliver(serve: Any, name: str) -> None:
        body = (EXAMPLES / "jira" / f"{name}.json").read_bytes()
        answer = httpx.post(f"{serve.base}/webhooks/jira", content=body,
                            headers=signed_headers("jira", body, delivery_id=name))
        assert answer.status_code == 202, answer.text

    def listed(serve: Any, count: int, newest_page: str) -> list[dict[str, Any]] | None:
        found = serve.api("/api/v1/escalations")["items"]
        return found if len(found) == count and found[0]["page"]["state"] == newest_page \
            else None

    def page_ops2(serve: Any) -> list[dict[str, Any]]:
        deliver(serve, "OPS-2.checkout")
        return eventually(lambda: listed(serve, 2, "dead"), "OPS-2's own page, dead")

    secret = {"FIRSTLINE_JIRA_WEBHOOK_SECRET": SECRETS["jira"]}
    serve = start(tmp_path, db_url, **secret)
    with running(serve):
        deliver(serve, "OPS-1.checkout")
        eventually(lambda: listed(serve, 1, "shadow"), "the shadow escalation")
        if switch == "sighup":
            write_rules(serve.rules, "enforce")
            os.kill(serve.process.pid, signal.SIGHUP)
            eventually(lambda: "scope note reloaded" in serve.log.read_text(),
                       "serve reloading the note")
            dead, shadow = page_ops2(serve)
    if switch == "restart":  # running() stopped it as a supervisor does (SIGTERM)
        with running(start(tmp_path, db_url, mode="enforce", **secret)) as serve:
            dead, shadow = page_ops2(serve)
    assert (shadow["status"], shadow["page"]["state"]) == ("closed", "shadow")
    assert dead["status"] == "closed" and [i["key"] for i in dead["items"]] == ["OPS-2"]
    assert "FIRSTLINE_PAGERDUTY_ROUTING_KEY is not set" in dead["page"]["error"]
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url, "FIRSTLINE_RULES": str(serve.rules),
           "FIRSTLINE_API_TOKEN": TOKEN}
    shown = subprocess.run([sys.executable, "-m", "router.cli", "escalations"], env=env,
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    rows = [line.split()[:3] for line in shown.stdout.splitlines()[1:3]]
    assert rows == [[str(dead["id"]), "closed", "dead"], [str(shadow["id"]), "closed", "shadow"]]

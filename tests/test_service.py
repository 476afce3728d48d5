"""The assembled service: signed deliveries in, decisions out through the read API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from router.core.durations import SINCE_HINT
from router.service import build_service
from router.settings import Settings
from tests.support import EXAMPLE_SCOPE, eventually
from tests.vendors import SECRETS, event_of, fixtures, signed_headers

TOKEN = "reader-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def settings(db_url: str, rules: Path = EXAMPLE_SCOPE) -> Settings:
    return Settings(rules=rules, database_url=db_url, api_token=TOKEN,
                    jira_webhook_secret=SECRETS["jira"], github_webhook_secret=SECRETS["github"],
                    pagerduty_webhook_secret=SECRETS["pagerduty"])


@pytest.fixture
def client(db_url: str) -> Iterator[TestClient]:
    with TestClient(build_service(settings(db_url))) as c:
        yield c


def post_fixtures(client: TestClient, sources: tuple[str, ...]) -> list[str]:
    ids = []
    for source in sources:
        for path in fixtures(source):
            body = path.read_bytes()
            delivery = f"{source}-{path.stem}"
            answer = client.post(f"/webhooks/{source}", content=body,
                                 headers=signed_headers(source, body, event_of(path), delivery))
            assert answer.status_code == 202, answer.text
            ids.append(delivery)
    return ids


def all_decisions(client: TestClient, **params: Any) -> list[dict[str, Any]]:
    """Page through /api/v1/decisions with `params`."""
    got: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = client.get("/api/v1/decisions", params=query, headers=AUTH)
        assert page.status_code == 200, page.text
        got += page.json()["items"]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return got


def decisions(client: TestClient, want: int, **params: Any) -> list[dict[str, Any]]:
    """Return the decisions once at least `want` are there (the worker runs meanwhile)."""
    def enough() -> tuple[list[dict[str, Any]]] | None:
        got = all_decisions(client, **params)
        return (got,) if len(got) >= want else None

    return eventually(enough, f"{want} decisions")[0]


def test_every_delivery_gets_one_decision_readable_through_the_api(client: TestClient) -> None:
    ids = post_fixtures(client, ("jira", "github", "pagerduty"))
    got = decisions(client, len(ids), limit=7)
    assert sorted(d["delivery_id"] for d in got if d["delivery_id"]) == sorted(ids)
    assert [d["id"] for d in got] == sorted((d["id"] for d in got), reverse=True)
    first = got[-1]
    assert set(first) == {"id", "delivery_id", "source", "item_key", "outcome", "owner",
                          "triggers", "event_at", "decided_at"}
    escalated = [d for d in got if d["outcome"] == "escalate"]
    assert escalated and all(d["triggers"] for d in escalated)


def test_filters(client: TestClient) -> None:
    ids = post_fixtures(client, ("jira", "github"))
    decisions(client, len(ids))
    github = decisions(client, 0, source="github")
    assert github and {d["source"] for d in github} == {"github"}
    ignored = decisions(client, 0, outcome="ignore")
    assert ignored and {d["outcome"] for d in ignored} == {"ignore"}
    tes = decisions(client, 0, item="TES-41")
    assert tes and {d["item_key"] for d in tes} == {"TES-41"}
    assert all_decisions(client, since="2030-01-01T00:00:00Z") == []
    for bad in ({"source": "gitlab"}, {"outcome": "maybe"}, {"cursor": "x"},
                {"limit": "1001"}, {"since": "2026-01-01T00:00:00"}, {"since": "2026-13-01"}):
        answer = client.get("/api/v1/decisions", params=bad, headers=AUTH)
        assert answer.status_code in (400, 422), (bad, answer.text)


def test_since_takes_a_date_as_midnight_in_the_notes_timezone(client: TestClient) -> None:
    """The CLI's `--since` reads the same way (router.core.durations.parse_since)."""
    ids = post_fixtures(client, ("jira", "github"))
    every = decisions(client, len(ids))
    day = min(d["event_at"] for d in every)[:10]  # the earliest event's UTC date
    midnight = datetime.combine(date.fromisoformat(day), time(0),
                                tzinfo=ZoneInfo("Europe/Berlin"))  # the example's timezone
    by_date = all_decisions(client, since=day)
    assert by_date == all_decisions(client, since=midnight.isoformat())
    assert by_date and all(datetime.fromisoformat(d["event_at"]) >= midnight for d in by_date)
    assert all_decisions(client, since="2030-01-01") == []
    assert len(all_decisions(client, since="2000-01-01")) == len(every)
    refused = client.get("/api/v1/decisions", params={"since": "2026-12-01T00:00:00"},
                         headers=AUTH)
    assert refused.status_code == 400
    assert refused.json()["detail"] == f"since: '2026-12-01T00:00:00' has no offset: {SINCE_HINT}"


def test_read_api_needs_the_token(client: TestClient, db_url: str) -> None:
    for path in ("/api/v1/decisions", "/api/v1/escalations", "/api/v1/scope"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.get(path, headers=AUTH).status_code == 200
    no_token = settings(db_url).model_copy(update={"api_token": None})
    with TestClient(build_service(no_token)) as other:
        assert other.get("/api/v1/decisions", headers=AUTH).status_code == 401


def test_only_the_whole_token_passes_and_the_scheme_is_case_insensitive(
        client: TestClient) -> None:
    token = AUTH["Authorization"].removeprefix("Bearer ")
    for refused in (token[:-1], token + "x", token.upper(), f"{token} {token}", ""):
        answer = client.get("/api/v1/scope", headers={"Authorization": f"Bearer {refused}"})
        assert answer.status_code == 401, refused
    assert client.get("/api/v1/scope", headers={"Authorization": token}).status_code == 401
    assert client.get("/api/v1/scope", headers={"Authorization": f"Basic {token}"}) \
        .status_code == 401
    for scheme in ("bearer", "BEARER"):  # RFC 7235: the scheme is case-insensitive
        assert client.get("/api/v1/scope", headers={
            "Authorization": f"{scheme} {token}"}).status_code == 200


def test_the_read_only_token_reads_and_every_token_is_compared_as_a_digest(
        db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """compare_digest leaks the length of what it compares: only digests reach it, one
    for each configured token whatever was sent, at the login form and the read API."""
    import hmac

    compared: list[tuple[int, int]] = []
    real = hmac.compare_digest

    def recording(a: bytes, b: bytes) -> bool:
        compared.append((len(a), len(b)))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", recording)
    read_only = settings(db_url).model_copy(update={"read_token": SecretStr("read-only")})
    with TestClient(build_service(read_only)) as client:
        for given, status in (("read-only", 200), (TOKEN, 200), ("x", 401), ("x" * 500, 401)):
            compared.clear()
            answer = client.get("/api/v1/scope", headers={"Authorization": f"Bearer {given}"})
            assert answer.status_code == status, given
            assert compared == [(32, 32), (32, 32)], given


def test_escalations_and_scope(client: TestClient) -> None:
    post_fixtures(client, ("pagerduty",))
    found = eventually(lambda: client.get("/api/v1/escalations", headers=AUTH).json()["items"],
                       "an escalation")
    one = client.get(f"/api/v1/escalations/{found[0]['id']}", headers=AUTH).json()
    assert one["status"] == "open" and one["dedup_key"].startswith("firstline/")
    assert one["items"] and one["items"][0]["source"] == "pagerduty"
    assert client.get("/api/v1/escalations/999999", headers=AUTH).status_code == 404
    scope = client.get("/api/v1/scope", headers=AUTH).json()
    assert scope["mode"] == "shadow" and scope["note"]["cto"] == "cto"


def test_metrics_count_decisions(client: TestClient) -> None:
    ids = post_fixtures(client, ("github",))
    decisions(client, len(ids))
    text = client.get("/metrics").text
    assert 'firstline_decisions_total{outcome="keep"}' in text
    assert "firstline_backlog 0.0" in text
    assert 'firstline_outbox_actions{status="dead"} 0.0' in text
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["detail"]["backlog"] == 0
    assert ready["detail"]["dead_actions"] == []
    assert ready["detail"]["worker_seconds_since_beat"] < 5


def test_scope_reload_keeps_the_old_note_when_the_new_one_is_invalid(
        db_url: str, tmp_path: Path) -> None:
    rules = tmp_path / "scope.yaml"
    rules.write_text(EXAMPLE_SCOPE.read_text())
    app = build_service(settings(db_url, rules), run_worker=False)
    holder = app.state.scope
    before = holder().hash
    rules.write_text("version: 1\nowners: []\n")
    holder.reload()
    assert holder().hash == before
    rules.write_text(EXAMPLE_SCOPE.read_text().replace("ad_hoc_hours_per_week: 6",
                                                       "ad_hoc_hours_per_week: 4"))
    holder.reload()
    assert holder().hash != before and holder().cap_hours == 4


def test_readyz_lists_dead_actions_without_failing(client: TestClient, engine: Any) -> None:
    from datetime import UTC, datetime

    from router.db.tables import outbox

    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(outbox.insert().values(
            decision_id=1, type="page", target="{}", action="{}", status="dead", attempts=8,
            next_at=now, created_at=now, last_error="pagerduty: 400 invalid routing key"))
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["detail"]["dead_actions"] == [
        {"id": 1, "type": "page", "error": "pagerduty: 400 invalid routing key"}]

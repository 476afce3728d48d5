"""POST /webhooks/{source} through the real app, on SQLite and PostgreSQL (SPEC §6).

Bodies are the recorded vendor deliveries, sent byte for byte; signatures are computed
with each vendor's documented scheme (tests/vendors.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from vendors import SECRETS, SOURCES, VENDOR, event_of, fixtures, signed_headers

from router.db.tables import inbox
from router.http.app import create_app
from router.settings import Settings

GITHUB_BODY = (VENDOR / "github" / "issues.opened.json").read_bytes()


@contextmanager
def client_for(db_url: str, **settings: Any) -> Iterator[TestClient]:
    """Run the app on `db_url` with every vendor's secret configured (unless overridden)."""
    values: dict[str, Any] = {f"{s}_webhook_secret": SECRETS[s] for s in SOURCES}
    values.update(database_url=db_url, **settings)
    with TestClient(create_app(Settings(**values))) as client:
        yield client


def stored(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbox).order_by(inbox.c.id)))


def post(client: TestClient, source: str, body: bytes, headers: dict[str, str]) -> Any:
    return client.post(f"/webhooks/{source}", content=body, headers=headers)


@pytest.mark.parametrize("source", SOURCES)
def test_every_recorded_delivery_is_stored_as_received(
    db_url: str, engine: Engine, source: str
) -> None:
    # The Linear recordings are years old; this test is about storage, not their age.
    with client_for(db_url, linear_max_age=10**10) as client:
        sent = []
        for path in fixtures(source):
            body = path.read_bytes()
            headers = signed_headers(source, body, event_of(path))
            response = post(client, source, body, headers)
            assert response.status_code == (200 if source == "linear" else 202), response.text
            assert response.json()["status"] == "accepted"
            sent.append((response.json()["id"], body, headers))
    rows = stored(engine)
    assert [(r.id, r.body) for r in rows] == [(i, b) for i, b, _ in sent]
    for row, (_, _, headers) in zip(rows, sent, strict=True):
        kept = json.loads(row.headers)
        assert row.source == source and row.status == "pending" and row.attempts == 0
        assert row.received_at.tzinfo is not None
        assert not any("signature" in name for name in kept)
        assert kept["user-agent"] == headers["User-Agent"]
        if source == "github":
            assert row.event_type == headers["X-GitHub-Event"]
            assert row.delivery_id == headers["X-GitHub-Delivery"]
        else:
            assert row.event_type is None


def test_delivery_ids_come_from_each_vendors_header(db_url: str, engine: Engine) -> None:
    id_header = {"jira": "X-Atlassian-Webhook-Identifier", "linear": "Linear-Delivery",
                 "github": "X-GitHub-Delivery", "pagerduty": "X-Webhook-Id"}
    with client_for(db_url, linear_max_age=10**10) as client:
        expected = []
        for source in SOURCES:
            body = fixtures(source)[0].read_bytes()
            headers = signed_headers(source, body)
            assert post(client, source, body, headers).status_code in (200, 202)
            expected.append((source, headers[id_header[source]]))
    assert [(r.source, r.delivery_id) for r in stored(engine)] == expected


def test_githubs_published_test_vector_passes_the_signature_check(db_url: str) -> None:
    # github/docs "Validating webhook deliveries": the body is not JSON, so a 400 (not a
    # 401) shows the signature was accepted.
    headers = {
        "X-Hub-Signature-256":
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "X-GitHub-Event": "ping", "X-GitHub-Delivery": "vector",
    }
    with client_for(db_url, github_webhook_secret="It's a Secret to Everybody") as client:
        response = post(client, "github", b"Hello, World!", headers)
    assert response.status_code == 400
    assert "not JSON" in response.json()["detail"]


PD_SECRET = "lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"
PD_GOOD = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd"
PD_OTHER = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5"


@pytest.mark.parametrize(
    ("header", "status"),
    [(PD_GOOD, 202), (f"{PD_OTHER},{PD_GOOD}", 202), (PD_OTHER, 401)],
)
def test_pagerdutys_published_test_vector(db_url: str, header: str, status: int) -> None:
    body = (VENDOR / "pagerduty" / "incident.priority_updated.signed.json").read_bytes()
    headers = {"X-PagerDuty-Signature": header, "X-Webhook-Id": f"vector-{status}-{len(header)}"}
    with client_for(db_url, pagerduty_webhook_secret=PD_SECRET) as client:
        assert post(client, "pagerduty", body, headers).status_code == status


@pytest.mark.parametrize("source", SOURCES)
def test_a_wrong_signature_is_refused_and_nothing_stored(
    db_url: str, engine: Engine, source: str
) -> None:
    body = fixtures(source)[0].read_bytes()
    headers = signed_headers(source, body, secret="not-the-secret")
    with client_for(db_url, linear_max_age=10**10) as client:
        response = post(client, source, body, headers)
    assert response.status_code == 401
    assert "matches none" in response.json()["detail"]
    assert stored(engine) == []


@pytest.mark.parametrize("source", SOURCES)
def test_a_missing_signature_is_refused_and_nothing_stored(
    db_url: str, engine: Engine, source: str
) -> None:
    body = fixtures(source)[0].read_bytes()
    headers = signed_headers(source, body)
    unsigned = {k: v for k, v in headers.items() if "Signature" not in k}
    with client_for(db_url) as client:
        response = post(client, source, body, unsigned)
    assert response.status_code == 401
    assert "missing" in response.json()["detail"]
    assert stored(engine) == []


@pytest.mark.parametrize("source", SOURCES)
def test_either_secret_of_a_rotation_is_accepted(db_url: str, source: str) -> None:
    body = fixtures(source)[0].read_bytes()
    with client_for(db_url, linear_max_age=10**10,
                    **{f"{source}_webhook_secret": "old-secret, new-secret"}) as client:
        for secret, status in (("old-secret", "accepted"), ("new-secret", "accepted")):
            headers = signed_headers(source, body, secret=secret)
            assert post(client, source, body, headers).json()["status"] == status
        headers = signed_headers(source, body, secret="retired-secret")
        assert post(client, source, body, headers).status_code == 401


def test_a_stale_linear_delivery_is_refused(db_url: str, engine: Engine) -> None:
    path = fixtures("linear")[0]  # recorded in 2023: webhookTimestamp is years old
    body = path.read_bytes()
    with client_for(db_url) as client:
        response = post(client, "linear", body, signed_headers("linear", body, event_of(path)))
    assert response.status_code == 401
    assert "stale" in response.json()["detail"]
    assert stored(engine) == []


def test_a_fresh_linear_delivery_is_accepted_with_200(db_url: str, engine: Engine) -> None:
    payload = json.loads((VENDOR / "linear" / "Issue.create.json").read_bytes())
    payload["webhookTimestamp"] = int(time.time() * 1000)
    body = json.dumps(payload).encode()
    with client_for(db_url) as client:
        response = post(client, "linear", body, signed_headers("linear", body, "Issue"))
    assert response.status_code == 200
    assert response.json() == {"status": "accepted", "id": stored(engine)[0].id}


def test_a_repeated_delivery_is_a_duplicate(db_url: str, engine: Engine) -> None:
    headers = signed_headers("github", GITHUB_BODY, "issues", delivery_id="72d3162e-cc78")
    with client_for(db_url) as client:
        first = post(client, "github", GITHUB_BODY, headers)
        again = post(client, "github", GITHUB_BODY, headers)
    assert first.status_code == 202
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(stored(engine)) == 1


def test_without_a_delivery_id_the_body_hash_deduplicates(db_url: str, engine: Engine) -> None:
    payload = json.loads(fixtures("linear")[0].read_bytes())
    payload["webhookTimestamp"] = int(time.time() * 1000)
    body = json.dumps(payload).encode()
    headers = signed_headers("linear", body, "Issue")
    del headers["Linear-Delivery"]
    with client_for(db_url) as client:
        assert post(client, "linear", body, headers).json()["status"] == "accepted"
        assert post(client, "linear", body, headers).json() == {"status": "duplicate"}
    [row] = stored(engine)
    assert row.delivery_id.startswith("sha256:")


def test_concurrent_requests_share_commits_and_store_each_delivery_once(
    db_url: str, engine: Engine
) -> None:
    def send(delivery: str) -> Any:
        headers = signed_headers("github", GITHUB_BODY, "issues", delivery_id=delivery)
        return post(client, "github", GITHUB_BODY, headers).json()

    deliveries = [f"d-{i % 40}" for i in range(120)]  # every id three times
    with client_for(db_url) as client, ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(send, deliveries))
    accepted = [a["id"] for a in answers if a["status"] == "accepted"]
    assert len(accepted) == 40 == len(set(accepted))
    assert sum(a["status"] == "duplicate" for a in answers) == 80
    assert sorted(r.id for r in stored(engine)) == sorted(accepted)


@pytest.mark.parametrize("source", SOURCES)
def test_a_signed_body_that_is_not_json_is_a_bad_request(
    db_url: str, engine: Engine, source: str
) -> None:
    body = b'{"action": "opened", '
    with client_for(db_url) as client:
        response = post(client, source, body, signed_headers(source, body))
    assert response.status_code == 400
    assert "body is not JSON" in response.json()["detail"]
    assert stored(engine) == []


def test_a_body_over_the_limit_is_refused_by_its_content_length(
    db_url: str, engine: Engine
) -> None:
    with client_for(db_url, max_body_bytes=len(GITHUB_BODY) - 1) as client:
        response = post(client, "github", GITHUB_BODY, signed_headers("github", GITHUB_BODY))
    assert response.status_code == 413
    assert str(len(GITHUB_BODY) - 1) in response.json()["detail"]
    assert stored(engine) == []


def test_a_chunked_body_over_the_limit_is_refused_while_counting(
    db_url: str, engine: Engine
) -> None:
    def chunks() -> Iterator[bytes]:
        yield GITHUB_BODY[:5000]
        yield GITHUB_BODY[5000:]

    headers = signed_headers("github", GITHUB_BODY)
    with client_for(db_url, max_body_bytes=len(GITHUB_BODY) - 1) as client:
        response = client.post("/webhooks/github", content=chunks(), headers=headers)
        assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert stored(engine) == []


def test_a_body_exactly_at_the_limit_is_accepted(db_url: str) -> None:
    with client_for(db_url, max_body_bytes=len(GITHUB_BODY)) as client:
        response = post(client, "github", GITHUB_BODY, signed_headers("github", GITHUB_BODY))
    assert response.status_code == 202


def test_an_unknown_source_is_not_found(db_url: str) -> None:
    with client_for(db_url) as client:
        response = client.post("/webhooks/bitbucket", content=b"{}")
        assert client.post("/webhooks/", content=b"{}").status_code == 404
    assert response.status_code == 404
    assert "bitbucket" in response.json()["detail"]


def test_only_post_is_allowed(db_url: str) -> None:
    with client_for(db_url) as client:
        response = client.get("/webhooks/github")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"


def test_a_bad_content_length_is_a_bad_request(db_url: str) -> None:
    with client_for(db_url) as client:
        response = client.post("/webhooks/github", content=b"{}",
                               headers={"Content-Length": "two"})
    assert response.status_code == 400


@pytest.mark.parametrize("source", SOURCES)
def test_a_source_without_a_secret_refuses_every_delivery(
    db_url: str, engine: Engine, source: str
) -> None:
    body = fixtures(source)[0].read_bytes()
    with client_for(db_url, **{f"{source}_webhook_secret": None}) as client:
        response = post(client, source, body, signed_headers(source, body))
    assert response.status_code == 401
    assert f"FIRSTLINE_{source.upper()}_WEBHOOK_SECRET" in response.json()["detail"]
    assert stored(engine) == []


def test_allow_unsigned_accepts_a_source_without_a_secret(db_url: str, engine: Engine) -> None:
    headers = {"X-GitHub-Event": "issues", "X-GitHub-Delivery": "unsigned-1"}
    with client_for(db_url, github_webhook_secret=None, allow_unsigned=True) as client:
        assert post(client, "github", GITHUB_BODY, headers).status_code == 202
        # A source that has a secret still checks it.
        assert post(client, "jira", b"{}", {}).status_code == 401
    assert [r.delivery_id for r in stored(engine)] == ["unsigned-1"]


def test_a_database_that_cannot_be_reached_gives_503(unreachable_pg_url: str) -> None:
    with client_for(unreachable_pg_url) as client:
        response = post(client, "github", GITHUB_BODY, signed_headers("github", GITHUB_BODY))
    assert response.status_code == 503
    assert "retry" in response.json()["detail"]


def test_a_broken_database_gives_503_and_recovers(db_url: str, engine: Engine) -> None:
    with client_for(db_url) as client:
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbox RENAME TO inbox_away"))
        response = post(client, "github", GITHUB_BODY, signed_headers("github", GITHUB_BODY))
        assert response.status_code == 503
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE inbox_away RENAME TO inbox"))
        response = post(client, "github", GITHUB_BODY, signed_headers("github", GITHUB_BODY))
        assert response.status_code == 202
    assert len(stored(engine)) == 1


def test_while_another_writer_holds_the_sqlite_lock_requests_wait_and_others_are_served(
    tmp_path: Any,
) -> None:
    import sqlite3

    from router.db.engine import upgrade

    path = tmp_path / "locked.db"
    upgrade(f"sqlite:///{path}")
    blocker = sqlite3.connect(path, isolation_level=None)
    with client_for(f"sqlite:///{path}") as client, ThreadPoolExecutor(1) as pool:
        blocker.execute("BEGIN IMMEDIATE")
        headers = signed_headers("github", GITHUB_BODY, "issues")
        pending = pool.submit(post, client, "github", GITHUB_BODY, headers)
        time.sleep(0.3)
        assert not pending.done()
        assert client.get("/healthz").status_code == 200  # the event loop is not blocked
        blocker.execute("COMMIT")
        assert pending.result(timeout=5).status_code == 202
    blocker.close()


@pytest.mark.parametrize("body", [b"[]", b'[{"action": "opened"}]', b'"opened"', b"42",
                                  b"true", b"null"])
def test_a_signed_json_body_that_is_not_an_object_is_a_bad_request(
    db_url: str, engine: Engine, body: bytes
) -> None:
    """`explain` refuses such a file, so the webhook does too, before storing it."""
    with client_for(db_url) as client:
        response = post(client, "github", body, signed_headers("github", body, "issues"))
    assert response.status_code == 400
    assert response.json()["detail"].startswith("body is not a JSON object but ")
    assert stored(engine) == []


def test_each_accepted_delivery_is_logged_once_with_its_ids(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with client_for(db_url) as client, caplog.at_level("INFO", logger="router.http.webhooks"):
        first = post(client, "github", GITHUB_BODY,
                     signed_headers("github", GITHUB_BODY, "issues", delivery_id="logged-1"))
        again = post(client, "github", GITHUB_BODY,
                     signed_headers("github", GITHUB_BODY, "issues", delivery_id="logged-1"))
    assert first.status_code == 202 and again.json() == {"status": "duplicate"}
    lines = [r.getMessage() for r in caplog.records if r.name == "router.http.webhooks"]
    assert lines == [f"accepted github delivery 'logged-1' as inbox {first.json()['id']}",
                     "duplicate github delivery 'logged-1': already stored"]
    assert all(r.levelname == "INFO" for r in caplog.records if r.name == "router.http.webhooks")

"""Bad input at the webhook door (SPEC §6, §8): each gets a clear 4xx, stores nothing
unless it carries a valid signature, and never breaks the service.

Signed bodies are real recorded deliveries (or variants of them) signed with each vendor's
documented scheme (tests/vendors.py). Oversize bodies are covered in test_ingest.py and
test_app.py; generated input in test_fuzz.py and test_openapi_fuzz.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from adapters import ADAPTERS
from router.core.decide import decide
from router.core.model import History
from router.db.tables import decisions, inbox
from router.http.app import create_app
from router.settings import Settings
from tests.support import EXAMPLE_SCOPE, decide_stored, eventually, example_scope
from tests.vendors import SECRETS, SOURCES, VENDOR, fixtures, signed_headers

ISSUE_OPENED = (VENDOR / "github" / "issues.opened.json").read_bytes()


def settings_for(db_url: str, **changes: Any) -> Settings:
    values: dict[str, Any] = {f"{s}_webhook_secret": SECRETS[s] for s in SOURCES}
    values.update(database_url=db_url, rules=EXAMPLE_SCOPE, **changes)
    return Settings(**values)


@contextmanager
def client_for(db_url: str, **changes: Any) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(db_url, **changes))) as client:
        yield client


def stored(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(inbox).order_by(inbox.c.id)))


def fresh_body(source: str) -> bytes:
    """A recorded delivery of `source`; Linear's stamped now, so its age passes."""
    body = fixtures(source)[0].read_bytes()
    if source != "linear":
        return body
    payload = json.loads(body)
    payload["webhookTimestamp"] = int(time.time() * 1000)
    return json.dumps(payload).encode()


@pytest.mark.parametrize("source", SOURCES)
def test_a_signature_for_a_different_body_is_refused(db_url: str, engine: Engine,
                                                     source: str) -> None:
    signed = fresh_body(source)
    sent = signed.replace(b"{", b'{"x": 1, ', 1)  # the same delivery with one field added
    with client_for(db_url) as client:
        answer = client.post(f"/webhooks/{source}", content=sent,
                             headers=signed_headers(source, signed, "issues"))
    assert answer.status_code == 401 and "matches none" in answer.json()["detail"]
    assert stored(engine) == []


@pytest.mark.parametrize("source", SOURCES)
def test_a_rotated_secret_old_and_new_pass_while_both_are_listed(db_url: str, engine: Engine,
                                                                 source: str) -> None:
    setting = f"{source}_webhook_secret"
    with client_for(db_url, **{setting: "old-secret,new-secret"}) as client:
        for secret in ("old-secret", "new-secret"):
            body = fresh_body(source)
            headers = signed_headers(source, body, "issues", f"during-{secret}", secret=secret)
            assert client.post(f"/webhooks/{source}", content=body,
                               headers=headers).status_code in (200, 202)
    with client_for(db_url, **{setting: "new-secret"}) as client:  # the rotation is over
        body = fresh_body(source)
        retired = client.post(f"/webhooks/{source}", content=body, headers=signed_headers(
            source, body, "issues", "after-old", secret="old-secret"))
        current = client.post(f"/webhooks/{source}", content=body, headers=signed_headers(
            source, body, "issues", "after-new", secret="new-secret"))
    assert retired.status_code == 401 and current.status_code in (200, 202)
    assert [r.delivery_id for r in stored(engine)] == [
        "during-old-secret", "during-new-secret", "after-new"]


def test_a_replayed_linear_delivery_past_its_window_is_refused(db_url: str,
                                                                engine: Engine) -> None:
    """A captured delivery sent again: a duplicate while fresh, refused once stale."""
    body = fresh_body("linear")
    headers = signed_headers("linear", body, "Issue", "linear-once")
    with client_for(db_url, linear_max_age=1.0) as client:
        first = client.post("/webhooks/linear", content=body, headers=headers)
        assert (first.status_code, first.json()["status"]) == (200, "accepted")
        replayed = eventually(
            lambda: (r := client.post("/webhooks/linear", content=body,
                                      headers=headers)).status_code == 401 and r,
            "the replay to fall outside the 1 s window", timeout=10)
    assert "stale" in replayed.json()["detail"]
    assert [r.delivery_id for r in stored(engine)] == ["linear-once"]


def _nested(depth: int) -> bytes:
    """issues.opened with an extra field nested `depth` levels deep."""
    return ISSUE_OPENED.replace(b"{", b'{"nested": ' + b"[" * depth + b"]" * depth + b", ", 1)


def test_json_nested_past_what_the_parser_reads_is_a_bad_request(db_url: str,
                                                                 engine: Engine) -> None:
    body = _nested(5000)
    with client_for(db_url) as client:
        answer = client.post("/webhooks/github", content=body,
                             headers=signed_headers("github", body, "issues"))
    assert answer.status_code == 400 and "not JSON" in answer.json()["detail"]
    assert stored(engine) == []


def test_deeply_nested_json_that_parses_is_stored_and_decided(db_url: str,
                                                              engine: Engine) -> None:
    github = _nested(1000)
    jira = json.loads((VENDOR / "jira" / "issue_created.json").read_bytes())
    jira["issue"]["fields"]["description"] = "@@"
    jira_body = json.dumps(jira).encode().replace(
        b'"@@"', b'{"content":[' * 500 + b'{"text":"deep"}' + b"]}" * 500)
    with client_for(db_url) as client:
        for source, body in (("github", github), ("jira", jira_body)):
            answer = client.post(f"/webhooks/{source}", content=body,
                                 headers=signed_headers(source, body, "issues"))
            assert answer.status_code == 202, answer.text
    assert decide_stored(db_url) == 2
    with engine.connect() as conn:
        outcomes = dict(conn.execute(select(decisions.c.source, decisions.c.outcome)).all())
    # Decided as `explain` decides the same payload: not ignored as unreadable.
    assert outcomes == {"github": explain("github", github), "jira": explain("jira", jira_body)}
    assert "ignore" not in outcomes.values()
    assert {r.status for r in stored(engine)} == {"done"}


def explain(source: str, body: bytes) -> str:
    """Decide a payload as `firstline explain --at now` does: nothing seen before."""
    event = ADAPTERS[source].parse(orjson.loads(body), "issues")  # type: ignore[index]
    return decide(event, example_scope(), History(), datetime.now(UTC)).outcome


@pytest.mark.parametrize("source", SOURCES)
def test_a_signed_body_that_is_not_utf8_is_a_bad_request(db_url: str, engine: Engine,
                                                         source: str) -> None:
    body = fresh_body(source).replace(b'"', b'"\xff\xfe', 1)
    with client_for(db_url) as client:
        answer = client.post(f"/webhooks/{source}", content=body,
                             headers=signed_headers(source, body, "issues"))
    assert answer.status_code == 400, answer.text
    assert stored(engine) == []


def test_a_form_encoded_github_delivery_names_the_setting_to_change(db_url: str,
                                                                    engine: Engine) -> None:
    """GitHub sends `payload=<urlencoded JSON>` when a webhook is set up for forms."""
    body = urlencode({"payload": ISSUE_OPENED.decode()}).encode()
    headers = {**signed_headers("github", body, "issues"),
               "Content-Type": "application/x-www-form-urlencoded"}
    with client_for(db_url) as client:
        answer = client.post("/webhooks/github", content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("body is form-encoded, not JSON: set the webhook's "
                                       "content type to application/json")
    assert stored(engine) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/octet-stream", None])
def test_a_signed_json_body_is_taken_whatever_content_type_it_names(
        db_url: str, engine: Engine, content_type: str | None) -> None:
    """The signature vouches for the bytes; vendors label them loosely, so the label is not
    a reason to drop a delivery."""
    headers = signed_headers("github", ISSUE_OPENED, "issues")
    headers.pop("Content-Type")
    if content_type:
        headers["Content-Type"] = content_type
    with client_for(db_url) as client:
        answer = client.post("/webhooks/github", content=ISSUE_OPENED, headers=headers)
    assert answer.status_code == 202
    assert [r.body for r in stored(engine)] == [ISSUE_OPENED]


def _asgi_post(app: FastAPI, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """Send one request straight to the ASGI app, as a server that passes any header
    would; return the status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        scope = {"type": "http", "method": "POST", "path": "/webhooks/github", "root_path": "",
                 "headers": headers, "query_string": b""}
        await app(scope, receive, send)
        await app.state.runtime.writer.aclose()

    asyncio.run(run())
    return int(sent[0]["status"])


@pytest.mark.parametrize("header", ["x-github-delivery", "x-github-event"])
def test_a_header_with_a_line_break_is_refused_by_the_app(db_url: str, engine: Engine,
                                                         header: str) -> None:
    app = create_app(settings_for(db_url))
    clean = [(k.lower().encode(), v.encode())
             for k, v in signed_headers("github", ISSUE_OPENED, "issues", "clean").items()]
    broken = [(k, v + b"\ninjected: yes" if k.decode() == header else v) for k, v in clean]
    assert _asgi_post(app, ISSUE_OPENED, broken) == 400
    assert stored(engine) == []
    assert _asgi_post(app, ISSUE_OPENED, clean) == 202


@pytest.fixture
def live_server(db_url: str, tmp_path: Path) -> Iterator[int]:
    """Run `firstline serve` (uvicorn with httptools) on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {**os.environ, "FIRSTLINE_DATABASE_URL": db_url,
           "FIRSTLINE_GITHUB_WEBHOOK_SECRET": SECRETS["github"]}
    firstline = Path(sys.executable).parent / "firstline"
    server = subprocess.Popen([firstline, "serve", "--rules", str(EXAMPLE_SCOPE), "--host",
                               "127.0.0.1", "--port", str(port)], env=env)
    try:
        eventually(lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1),
                   "uvicorn to answer", ignore=(httpx.TransportError,))
        yield port
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_header_with_a_line_break_is_refused_under_uvicorn(live_server: int,
                                                             engine: Engine) -> None:
    headers = signed_headers("github", ISSUE_OPENED, "issues")
    del headers["X-GitHub-Delivery"]
    head = b"".join(f"{k}: {v}\r\n".encode() for k, v in headers.items())
    for value in (b"abc\r\n folded", b"abc\ninjected: yes", b"abc\rx", b"abc\x00nul"):
        request = (b"POST /webhooks/github HTTP/1.1\r\nHost: firstline\r\n" + head
                   + b"X-GitHub-Delivery: " + value + b"\r\n"
                   + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(ISSUE_OPENED)
                   + ISSUE_OPENED)
        with socket.create_connection(("127.0.0.1", live_server), timeout=10) as conn:
            conn.sendall(request)
            status_line = conn.makefile("rb").readline()
        assert status_line.startswith(b"HTTP/1.1 400"), (value, status_line)
    assert stored(engine) == []

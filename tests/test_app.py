"""Health, readiness, metrics and the OpenAPI document; one run under a real uvicorn."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from vendors import SECRETS, VENDOR, signed_headers

from router.db.engine import alembic_config, make_engine, upgrade
from router.db.tables import inbox
from router.http.app import clients_detail, create_app
from router.settings import Settings
from tests.support import EXAMPLE_SCOPE, ROOT, eventually

GITHUB_BODY = (VENDOR / "github" / "issues.opened.json").read_bytes()


def client(url: str) -> TestClient:
    return TestClient(create_app(Settings(database_url=url, github_webhook_secret="s")))


def test_healthz_answers_without_a_database(unreachable_pg_url: str) -> None:
    with client(unreachable_pg_url) as c:
        assert c.get("/healthz").json() == {"status": "ok"}


def test_readyz_is_ready_on_a_migrated_database(db_url: str) -> None:
    with client(db_url) as c:
        response = c.get("/readyz")
    assert (response.status_code, response.json()) == (
        200, {"status": "ready", "detail": {"backlog": 0, "dead_actions": [],
                                            "clients": clients_detail(Settings())}})


def test_readyz_fails_until_migrations_are_applied(empty_db_url: str) -> None:
    with client(empty_db_url) as c:
        response = c.get("/readyz")
        assert response.status_code == 503
        assert "pending migrations" in response.json()["detail"]
        upgrade(empty_db_url)
        assert c.get("/readyz").status_code == 200


def stamp(url: str, revision: str) -> None:
    """Set the database's recorded migration, as another release's `db upgrade` would."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def test_readyz_stays_ready_when_a_newer_release_migrated_the_database(db_url: str) -> None:
    """A rolling upgrade: the next release's hook Job applied its migration while this
    release's pods still serve. They stay ready, and say so."""
    stamp(db_url, "0099_from_a_newer_release")
    with client(db_url) as c:
        response = c.get("/readyz")
    assert response.status_code == 200, response.text
    assert "0099_from_a_newer_release" in response.json()["detail"]["migrations"]


def test_readyz_fails_when_the_database_is_one_migration_behind(db_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config())
    head = script.get_revision(script.get_current_head())
    stamp(db_url, str(head.down_revision))
    with client(db_url) as c:
        response = c.get("/readyz")
    assert response.status_code == 503
    assert "pending migrations" in response.json()["detail"]


def test_readyz_fails_when_the_database_is_unreachable(unreachable_pg_url: str) -> None:
    with client(unreachable_pg_url) as c:
        response = c.get("/readyz")
    assert response.status_code == 503
    assert response.json()["detail"].startswith("database unreachable")


def test_metrics_count_deliveries_by_source_and_status(db_url: str) -> None:
    headers = signed_headers("github", GITHUB_BODY, "issues", secret="s")
    with client(db_url) as c:
        assert c.post("/webhooks/github", content=GITHUB_BODY, headers=headers).status_code == 202
        assert c.post("/webhooks/github", content=GITHUB_BODY, headers=headers).status_code == 200
        assert c.post("/webhooks/github", content=GITHUB_BODY).status_code == 401
        text = c.get("/metrics").text
    assert 'firstline_inbox_deliveries{source="github",status="pending"} 1.0' in text
    assert "firstline_database_up 1.0" in text
    for result in ("accepted", "duplicate", "unauthorized"):
        line = f'firstline_webhook_deliveries_total{{result="{result}",source="github"}} 1.0'
        assert line in text


def test_metrics_report_a_database_that_is_down(unreachable_pg_url: str) -> None:
    with client(unreachable_pg_url) as c:
        response = c.get("/metrics")
    assert response.status_code == 200
    assert "firstline_database_up 0.0" in response.text


def test_openapi_documents_the_webhook_route(db_url: str) -> None:
    with client(db_url) as c:
        paths = c.get("/openapi.json").json()["paths"]
    assert {"/webhooks/{source}", "/healthz", "/readyz", "/metrics"} <= set(paths)
    assert set(paths["/webhooks/{source}"]["post"]["responses"]) >= {"202", "401", "413", "503"}


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Run `firstline serve` on SQLite; yield (base URL, db URL)."""
    db_url = f"sqlite:///{tmp_path / 'live.db'}"
    upgrade(db_url)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ, "FIRSTLINE_DATABASE_URL": db_url,
        "FIRSTLINE_GITHUB_WEBHOOK_SECRET": SECRETS["github"], "FIRSTLINE_MAX_BODY_BYTES": "20000",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "router.cli", "serve", "--rules", str(EXAMPLE_SCOPE),
         "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=ROOT,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: server.poll() is not None or httpx.get(f"{base}/healthz", timeout=1),
                   "the server", ignore=(httpx.TransportError,))
        assert server.poll() is None, "firstline serve exited"
        yield base, db_url
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_under_uvicorn_a_delivery_is_committed_before_the_answer(
    live_server: tuple[str, str],
) -> None:
    base, db_url = live_server
    headers = signed_headers("github", GITHUB_BODY, "issues")
    response = httpx.post(f"{base}/webhooks/github", content=GITHUB_BODY, headers=headers)
    assert response.status_code == 202
    engine: Engine = make_engine(db_url)
    with engine.connect() as conn:
        body = conn.execute(select(inbox.c.body).where(inbox.c.id == response.json()["id"]))
        assert body.scalar_one() == GITHUB_BODY
    engine.dispose()


def test_under_uvicorn_a_streamed_body_over_the_limit_is_refused(
    live_server: tuple[str, str],
) -> None:
    base, db_url = live_server

    def chunks() -> Iterator[bytes]:
        for _ in range(30):
            yield b" " * 1000

    response = httpx.post(f"{base}/webhooks/github", content=chunks(),
                          headers=signed_headers("github", b"x"))
    assert response.status_code == 413
    assert "20000" in response.json()["detail"]
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(inbox)).scalar_one() == 0
    engine.dispose()

"""Structured logs (`FIRSTLINE_LOG_FORMAT=json`): every line of a real process is one JSON
object, with a line per delivery decided and per action performed that names the delivery,
the item, the decision, the outcome and the duration; never a secret. Text stays the
default and leaves those lines out."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, select
from vendors import SECRETS

from router.db.inbox import Delivery, insert_delivery
from router.db.tables import decisions
from tests.support import ROOT, eventually
from tests.test_runtime import OWNER, assigned_issue, github_standin, issues, post_issue, scope
from tests.test_serve import TOKEN, running, start

GITHUB_TOKEN = "gh-token"  # what bench/e2e_standin.py accepts


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse every line; fail on one that is not a JSON object."""
    lines = [orjson.loads(line) for line in text.splitlines() if line.strip()]
    assert lines and all(isinstance(line, dict) for line in lines)
    return lines


def events(lines: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == kind]


def stored_decisions(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(decisions.c.id, decisions.c.delivery_id,
                                        decisions.c.item_key, decisions.c.outcome)))


def test_json_logs_say_each_delivery_and_action_of_a_serve_process(
        tmp_path: Path, db_url: str, engine: Engine) -> None:
    with github_standin(1) as github:
        serve = start(tmp_path, db_url, mode="enforce", FIRSTLINE_LOG_FORMAT="json",
                      FIRSTLINE_GITHUB_API_URL=github, FIRSTLINE_GITHUB_TOKEN=GITHUB_TOKEN)
        with running(serve):
            assert post_issue(serve.base, 1, "json") == 202
            eventually(lambda: issues(github)["1"]["comments"], "the comment")
            eventually(lambda: len(events(json_lines(serve.log.read_text()), "action")) == 2,
                       "both actions' lines")
        text = serve.log.read_text()
        assert issues(github)["1"]["assignees"] == [OWNER]
    lines = json_lines(text)  # uvicorn's own lines included
    assert {"time", "level", "logger", "message"} <= set(lines[0])
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    [decision] = stored_decisions(engine)
    [delivery] = events(lines, "delivery")
    assert delivery["delivery_id"] == decision.delivery_id == "json-1"
    assert (delivery["item_key"], delivery["decision_id"], delivery["outcome"]) == (
        decision.item_key, decision.id, decision.outcome)
    assert delivery["source"] == "github" and delivery["duration_ms"] >= 0
    actions = events(lines, "action")
    assert sorted(a["type"] for a in actions) == ["assign", "comment"]
    for action in actions:
        assert (action["delivery_id"], action["item_key"], action["decision_id"]) == (
            "json-1", decision.item_key, decision.id)
        assert action["outcome"] == "done" and action["duration_ms"] > 0
    for secret in (SECRETS["github"], GITHUB_TOKEN, TOKEN):
        assert secret not in text


def worker_once(tmp_path: Path, db_url: str, **env: str) -> str:
    """Run `firstline worker --once` in enforce mode with no GitHub client; return stderr."""
    run = subprocess.run([sys.executable, "-m", "router.cli", "worker", "--once"], cwd=ROOT,
                         env={**os.environ, "FIRSTLINE_DATABASE_URL": db_url,
                              "FIRSTLINE_RULES": str(scope(tmp_path)), **env},
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return run.stderr


def store_delivery(engine: Engine, delivery_id: str, issue: int) -> None:
    with engine.begin() as conn:
        insert_delivery(conn, Delivery("github", delivery_id, "issues", "{}",
                                       assigned_issue(issue), datetime.now(UTC)))


def test_json_logs_say_a_dead_action_and_the_text_default_keeps_its_lines(
        tmp_path: Path, db_url: str, engine: Engine) -> None:
    store_delivery(engine, "as-json", 1)
    lines = json_lines(worker_once(tmp_path, db_url, FIRSTLINE_LOG_FORMAT="json"))
    [decision] = stored_decisions(engine)
    [delivery] = events(lines, "delivery")
    assert (delivery["delivery_id"], delivery["decision_id"]) == ("as-json", decision.id)
    actions = events(lines, "action")
    assert {a["outcome"] for a in actions} == {"dead"} and len(actions) == 2
    assert all(a["delivery_id"] == "as-json" and a["attempt"] == 1 for a in actions)
    dead = [line for line in lines if line["message"].startswith("action ") and
            line["logger"] == "firstline.act"]
    assert dead and all(line["level"] == "WARNING" for line in dead)

    store_delivery(engine, "as-text", 2)
    text = worker_once(tmp_path, db_url)
    assert not any(line.startswith("{") for line in text.splitlines())
    assert "firstline.events" not in text and " WARNING firstline.act action " in text

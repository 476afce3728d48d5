"""Commands that read the service's database (`outbox list`, `outbox retry`, `replay
--from-db`): run as a real subprocess, from another folder, against SQLite and PostgreSQL.

They never create a database, and each failure is one line naming the database and
`FIRSTLINE_DATABASE_URL`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import Engine

from tests.support import EXAMPLE_SCOPE, ROOT
from tests.test_worker import put

READ_COMMANDS = [
    ("outbox", "list"),
    ("outbox", "list", "--status", "dead"),
    ("outbox", "retry", "1"),
    ("replay", "--from-db", "--rules", str(EXAMPLE_SCOPE)),
]


def firstline(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTLINE_")}
    return subprocess.run([sys.executable, "-m", "router.cli", *args], cwd=cwd,
                          env={**clean, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=120)


def one_line_failure(run: subprocess.CompletedProcess[str]) -> str:
    assert run.returncode == 1, run
    assert run.stdout == "" and "Traceback" not in run.stderr, run.stderr
    lines = run.stderr.splitlines()
    assert len(lines) == 1, run.stderr
    return lines[0]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_run_from_another_folder_it_names_the_database_and_creates_none(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    line = one_line_failure(firstline(tmp_path, *args))
    assert line == (f"firstline: no database at {tmp_path / 'firstline.db'}: set "
                    "FIRSTLINE_DATABASE_URL to the service's database (the default is "
                    "./firstline.db in the current folder)")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_a_database_without_tables_is_named_with_the_hint(
        tmp_path: Path, args: tuple[str, ...]) -> None:
    path = tmp_path / "elsewhere.db"
    path.touch()
    line = one_line_failure(firstline(tmp_path, *args,
                                      FIRSTLINE_DATABASE_URL=f"sqlite:///{path}"))
    assert line.startswith(f"firstline: cannot read the database at {path}: "
                           "OperationalError: no such table: ")
    assert line.endswith("(check FIRSTLINE_DATABASE_URL, or run `firstline db upgrade`)")


def test_an_unreachable_postgresql_is_named_without_its_password(
        tmp_path: Path, unreachable_pg_url: str) -> None:
    url = unreachable_pg_url.replace("firstline@", "firstline:hunter2@")
    line = one_line_failure(firstline(tmp_path, "outbox", "list", FIRSTLINE_DATABASE_URL=url))
    assert line.startswith("firstline: cannot read the database at "
                           "postgresql+psycopg://firstline:***@127.0.0.1:1/firstline: "
                           "OperationalError: ")
    assert "hunter2" not in line and "FIRSTLINE_DATABASE_URL" in line


def test_replay_since_a_date_starts_at_midnight_in_the_notes_timezone(
        tmp_path: Path, engine: Engine, db_url: str) -> None:
    """Europe/Berlin (the example's) is UTC+1 in November: 2026-11-21 begins at 23:00Z."""
    put(engine, "github", "ping", "before", datetime.fromisoformat("2026-11-20T22:59:00+00:00"),
        event_type="ping")
    put(engine, "github", "ping", "after", datetime.fromisoformat("2026-11-20T23:01:00+00:00"),
        event_type="ping")
    run = firstline(tmp_path, "replay", "--from-db", "--json", "--since", "2026-11-21",
                    "--rules", str(EXAMPLE_SCOPE), FIRSTLINE_DATABASE_URL=db_url)
    assert run.returncode == 0, run.stderr
    assert [orjson.loads(line)["file"] for line in run.stdout.splitlines()] == ["inbox:2"]
    naive = firstline(tmp_path, "replay", "--from-db", "--since", "2026-11-21T00:00:00",
                      "--rules", str(EXAMPLE_SCOPE), FIRSTLINE_DATABASE_URL=db_url)
    assert one_line_failure(naive).startswith(
        "firstline: --since '2026-11-21T00:00:00' has no offset: give a date")

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
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, text

from router.db.engine import alembic_config, make_engine, pending_migrations
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


def head() -> str:
    return str(ScriptDirectory.from_config(alembic_config()).get_current_head())


def test_db_upgrade_run_twice_migrates_once_then_says_there_is_nothing_to_do(
        tmp_path: Path, empty_db_url: str) -> None:
    env = {"FIRSTLINE_DATABASE_URL": empty_db_url}
    first = firstline(tmp_path, "db", "upgrade", **env)
    assert (first.returncode, first.stderr) == (0, ""), first
    assert first.stdout == (f"database upgraded from revision none (empty database) "
                            f"to {head()}\n")
    engine = make_engine(empty_db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        again = firstline(tmp_path, "db", "upgrade", **env)
        assert (again.returncode, again.stderr) == (0, ""), again
        assert again.stdout == f"database is up to date (revision {head()}): nothing to do\n"
        assert set(inspect(engine).get_table_names()) == tables
        assert not pending_migrations(engine)
    finally:
        engine.dispose()


def test_db_upgrade_of_an_older_release_leaves_a_newer_database_alone(
        tmp_path: Path, db_url: str) -> None:
    """A rollback's hook Job runs the older release's `db upgrade`: it must not fail."""
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    engine.dispose()
    run = firstline(tmp_path, "db", "upgrade", FIRSTLINE_DATABASE_URL=db_url)
    assert (run.returncode, run.stderr) == (0, ""), run
    assert run.stdout == "database is at revision 0099, newer than this release: nothing to do\n"


def test_two_db_upgrades_at_once_take_turns(tmp_path: Path, empty_db_url: str) -> None:
    """Two hook Jobs (or a Job and an operator) upgrading one PostgreSQL at the same time:
    one migrates, the other waits for it and finds nothing to do."""
    if not empty_db_url.startswith("postgresql"):
        pytest.skip("SQLite serves one process")
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIRSTLINE_")}
    env = {**clean, "PYTHONPATH": str(ROOT), "FIRSTLINE_DATABASE_URL": empty_db_url}
    runs = [subprocess.Popen([sys.executable, "-m", "router.cli", "db", "upgrade"],
                             cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = sorted(run.communicate(timeout=120) for run in runs)
    assert [run.returncode for run in runs] == [0, 0], outputs
    assert [out for out, _ in outputs] == [
        f"database is up to date (revision {head()}): nothing to do\n",
        f"database upgraded from revision none (empty database) to {head()}\n"]

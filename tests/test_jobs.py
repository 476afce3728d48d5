"""The periodic jobs this branch adds (router.work.periodic): retention and GitHub's
delivery gaps; with PostgreSQL one worker at a time runs each."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import Engine, func, select

from router.db.engine import try_session_lock
from router.settings import Settings
from router.work import github_gaps, retention
from router.work.periodic import JOBS


def test_the_jobs_are_in_the_one_list() -> None:
    names = {job.name: job for job in JOBS}
    assert names["retention"].every == 3600 and names["github delivery gaps"].every == 300


def test_the_gaps_job_does_nothing_without_hooks(engine: Engine) -> None:
    job = github_gaps.GitHubGaps()
    job._started -= github_gaps.FIRST_AFTER_S
    assert job(engine, Settings()) is None and job.finder is None


def test_retention_off_prunes_nothing(engine: Engine) -> None:
    retention.retention(engine, Settings(retention_days=0))  # no error, no query needed


def test_on_postgresql_a_job_another_worker_holds_is_skipped(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serves one process: there is no other worker")
    inside, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def other_worker() -> None:
        with try_session_lock(engine, retention.LOCK) as held:
            seen.append(held)
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=other_worker)
    thread.start()
    assert inside.wait(10)
    with try_session_lock(engine, retention.LOCK) as held:
        seen.append(held)
    release.set()
    thread.join()
    with try_session_lock(engine, retention.LOCK) as held:
        seen.append(held)
    assert seen == [True, False, True]
    with engine.connect() as conn:  # and it was let go
        assert conn.execute(select(func.pg_try_advisory_lock(retention.LOCK))).scalar()

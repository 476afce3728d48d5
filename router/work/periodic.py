"""The worker's periodic jobs: one list, run by one thread of each process that decides.

To add a job, add a `Job` to `JOBS`: a name, how often it runs (seconds) and a function
of the engine and the settings. Each job runs first when the process starts, then every
`every` seconds. On PostgreSQL every `firstline worker` (and `serve`) process runs the
list, so make a job idempotent, or let one replica at a time do it (take
`pg_try_advisory_xact_lock` and skip when it is taken). A job that raises is logged and
runs again at its next turn; it never stops the others or the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import Engine

from router.db.engine import analyze_changed
from router.settings import Settings
from router.work import github_gaps, retention

log = logging.getLogger("firstline.periodic")


@dataclass(frozen=True, slots=True)
class Job:
    """A function the worker's process runs every `every` seconds."""

    name: str
    every: float
    run: Callable[[Engine, Settings], object]


def analyze_busy_tables(engine: Engine, settings: Settings | None = None) -> list[str]:
    """ANALYZE the busy tables that outgrew their statistics (PostgreSQL; router.db.engine
    `analyze_changed` gives the figures that justified it; not measured again against
    autovacuum alone when the runtime became one process); return their names."""
    if engine.dialect.name != "postgresql":
        return []
    with engine.begin() as conn:
        analyzed = analyze_changed(conn)
    if analyzed:
        log.info("analyzed %s: they outgrew their statistics", ", ".join(analyzed))
    return analyzed


JOBS: tuple[Job, ...] = (
    Job("analyze busy tables", 5.0, analyze_busy_tables),
    Job("retention", retention.EVERY_S, retention.retention),
    Job("github delivery gaps", github_gaps.CHECK_EVERY_S, github_gaps.GitHubGaps()),
)


class Periodic(threading.Thread):
    """Run `jobs` on their schedules until `stop`."""

    def __init__(self, engine: Engine, settings: Settings, jobs: Sequence[Job] = JOBS) -> None:
        super().__init__(name="firstline-periodic", daemon=True)
        self._engine = engine
        self._settings = settings
        self._jobs = list(jobs)
        self._stopping = threading.Event()

    def run(self) -> None:
        due = {job.name: time.monotonic() for job in self._jobs}
        while self._jobs and not self._stopping.is_set():
            for job in self._jobs:
                if time.monotonic() >= due[job.name]:
                    due[job.name] = time.monotonic() + job.every
                    try:
                        job.run(self._engine, self._settings)
                    except Exception:
                        log.warning("periodic job %r failed", job.name, exc_info=True)
            self._stopping.wait(max(0.0, min(due.values()) - time.monotonic()))

    def stop(self) -> None:
        self._stopping.set()

"""Run the work behind the HTTP side in this process: the worker (decide deliveries and
timers), the outbox performer, the periodic jobs and, on PostgreSQL, the LISTEN thread.

Each is a thread of this interpreter: they wait on the database and the vendors, so
blocking calls are what they do, and none of it runs on the event loop that serves HTTP.
They wake each other with plain `threading` primitives: a stored delivery wakes the
worker (router.db.group_commit `on_commit`), a batch that queued actions wakes the
performer; wake-ups from other processes arrive by LISTEN/NOTIFY (router.db.notify).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from adapters import outbound_adapters
from adapters.base import OutboundAdapter
from router.db.engine import worker_engine
from router.db.notify import INBOX, OUTBOX, Listener
from router.scope.load import Scope
from router.settings import Settings
from router.work.metrics import Metrics
from router.work.outbox import Performer
from router.work.periodic import JOBS, Job, Periodic
from router.work.worker import Worker, utcnow

log = logging.getLogger("firstline.runner")

STOP_WITHIN = 20.0  # seconds for the loops to finish at shutdown (Kubernetes waits 30)


class Background:
    """The worker, the performer and their helpers, as threads; `start`, then `stop`."""

    def __init__(self, settings: Settings, scope: Callable[[], Scope],
                 adapters: Mapping[str, OutboundAdapter] | None = None,
                 metrics: Metrics | None = None, jobs: tuple[Job, ...] = JOBS) -> None:
        self.settings = settings
        self.engine = worker_engine(settings.database_url)
        self.metrics = metrics or Metrics()
        self.worker = Worker(self.engine, scope, metrics=self.metrics)
        self.performer = Performer(self.engine, lazy_adapters(settings, adapters), utcnow,
                                   concurrency=settings.outbox_concurrency,
                                   metrics=self.metrics)
        self.worker.on_actions = self.performer.wake
        self.periodic = Periodic(self.engine, settings, jobs)
        self.listener = (Listener(self.engine, {INBOX: self.worker.wake,
                                                OUTBOX: self.performer.wake})
                         if self.engine.dialect.name == "postgresql" else None)
        self._stop = threading.Event()
        poll = settings.poll_interval
        self._loops = [
            threading.Thread(target=self.worker.run, args=(self._stop, poll),
                             name="firstline-worker", daemon=True),
            threading.Thread(target=self.performer.run, args=(self._stop, poll),
                             name="firstline-performer", daemon=True)]

    def start(self) -> None:
        for thread in [*self._loops, self.periodic, self.listener]:
            if thread is not None:
                thread.start()
        log.info("deciding and acting (database %s)", self.engine.dialect.name)

    def stop(self, within: float = STOP_WITHIN) -> bool:
        """Stop taking work, let the loops finish what they hold, and close; tell whether
        they finished in time (if not, what a performer still holds is taken back by the
        next process: router.db.outbox)."""
        self._stop.set()
        self.worker.wake()
        self.performer.wake()
        self.periodic.stop()
        if self.listener is not None:
            self.listener.stop()
        deadline = time.monotonic() + within
        for thread in self._loops:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = not any(thread.is_alive() for thread in self._loops)
        if not finished:
            log.warning("the worker or performer did not finish within %g s", within)
        self.engine.dispose()
        return finished


def lazy_adapters(settings: Settings, given: Mapping[str, OutboundAdapter] | None = None
                  ) -> Callable[[], Mapping[str, OutboundAdapter]]:
    """Return the vendor clients, built on the first action (none connects before)."""
    registry: dict[str, OutboundAdapter] = dict(given or {})

    def outbound() -> dict[str, OutboundAdapter]:
        if not registry:
            registry.update(outbound_adapters(settings))
        return registry

    return outbound

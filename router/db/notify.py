"""Wake-ups across processes and hosts on PostgreSQL: LISTEN/NOTIFY.

Ingest NOTIFYs `firstline_inbox` once it has committed deliveries; the worker NOTIFYs
`firstline_outbox` inside a batch's transaction that queued actions, so PostgreSQL
delivers it at the commit. Every process that decides or performs runs a `Listener`: a
thread LISTENing on a connection of its own, waking the loops it serves. Notifications
are hints, never the record: when the connection drops they are lost until it is back
(retried every second), and the loops' poll (FIRSTLINE_POLL_INTERVAL) finds the work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping

import psycopg
from sqlalchemy import Connection, Engine

from router.db.engine import PG_CONNECT_TIMEOUT_S

log = logging.getLogger("firstline.notify")

INBOX = "firstline_inbox"  # deliveries stored: the workers decide them
OUTBOX = "firstline_outbox"  # actions queued: the performers act
RECONNECT_S = 1.0


def notify(conn: Connection, channel: str) -> None:
    """Queue a notification on `channel`, sent when the caller's transaction commits."""
    conn.exec_driver_sql(f"NOTIFY {channel}")  # channel: one of the names above


def libpq_url(engine: Engine) -> str:
    """Return the engine's URL as libpq takes it (without SQLAlchemy's driver suffix)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


class Listener(threading.Thread):
    """LISTEN on each channel of `wakes` and call its function when a notification comes
    (and once on every (re)connect: what was stored meanwhile went unannounced)."""

    def __init__(self, engine: Engine, wakes: Mapping[str, Callable[[], None]]) -> None:
        super().__init__(name="firstline-listen", daemon=True)
        self._url = libpq_url(engine)
        self._wakes = dict(wakes)
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._listen()
            except psycopg.Error as exc:
                log.warning("not listening for wake-ups (%s); polling meanwhile",
                            type(exc).__name__)
                self._stopping.wait(RECONNECT_S)

    def _listen(self) -> None:
        with psycopg.connect(self._url, autocommit=True,
                             connect_timeout=PG_CONNECT_TIMEOUT_S) as conn:
            for channel in self._wakes:
                conn.execute(f"LISTEN {channel}")
            log.info("listening for wake-ups on %s", ", ".join(self._wakes))
            for wake in self._wakes.values():
                wake()
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=0.5):
                    self._wakes[note.channel]()

    def stop(self) -> None:
        """Stop listening (within half a second)."""
        self._stopping.set()

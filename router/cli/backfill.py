"""`firstline db load`: put recorded deliveries in the database, decided in event time.

For trying the reviews on recorded deliveries (`examples/deliveries/`), or for
backfilling what a tracker sent before firstline ran: each file is stored in the inbox
as a delivery and decided as of its own timestamp (router.work.backfill), so
`firstline report`, `exceptions` and the read API show what the service would have
recorded. Only a scope note in shadow mode is accepted: nothing is done in the trackers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from router.cli import payloads
from router.cli.service import ServiceError, _ready
from router.core.simulate import Delivery


def cmd_db_load(args: argparse.Namespace) -> int:
    from router.db.engine import worker_engine
    from router.scope.load import load_scope
    from router.work.backfill import load_recorded

    source = payloads.check_source(args.source) if args.source else None
    recorded = list(payloads.load_deliveries([Path(p) for p in args.paths], source))
    settings = _ready(args)
    scope = load_scope(settings.rules)[0]
    if scope.mode != "shadow":
        raise ServiceError(f"db load: {settings.rules} is in {scope.mode} mode; load "
                           "recorded deliveries under a note in shadow mode, so firstline "
                           "does nothing in the trackers about old events")
    engine = worker_engine(settings.database_url)
    try:
        loaded = load_recorded(engine, lambda: scope, recorded, _raw)
    finally:
        engine.dispose()
    print(f"stored {loaded.stored} deliveries ({loaded.duplicates} already stored); "
          f"decided {loaded.decided} deliveries and timers in event time")
    return 0


def _raw(delivery: Delivery) -> tuple[str, str | None, bytes]:
    """Return a recorded file's source, GitHub event header and bytes as stored."""
    event = delivery.event
    header = event.event_type.split(".")[0] if event.source == "github" else None
    return event.source, header, Path(delivery.origin).read_bytes()

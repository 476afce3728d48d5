"""How the service logs: one line per event, at INFO, to standard error.

`FIRSTLINE_LOG_FORMAT=text` (the default) writes `time LEVEL logger message`;
`json` writes one JSON object per line, for a log collector, and adds a line per
delivery decided and per action performed (the `firstline.events` logger: `log_event`),
which text mode leaves out (at hundreds of deliveries a second they would drown the rest).
No line carries a secret: the event lines hold ids, keys, outcomes and durations only,
and messages never format a setting's value (SPEC §7).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Literal

import orjson

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
EVENTS = logging.getLogger("firstline.events")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message, the event's
    fields (`log_event`), and the traceback of an exception as `error`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def setup_logging(log_format: LogFormat = "text") -> None:
    """Send INFO and above to standard error, one line each, in `log_format`; quiet the
    chatty libraries."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per vendor call is noise
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz checks migrations
    EVENTS.setLevel(logging.INFO if log_format == "json" else logging.WARNING)


def events_on() -> bool:
    """Tell whether event lines are written (JSON logs): callers skip building them if not."""
    return EVENTS.isEnabledFor(logging.INFO)


def log_event(message: str, fields: Mapping[str, object]) -> None:
    """Write one event line (a delivery decided, an action performed) with its fields."""
    EVENTS.info(message, extra={"fields": dict(fields)})

"""How the service logs: one line per event, at INFO, to standard error."""

from __future__ import annotations

import logging


def setup_logging() -> None:
    """Send INFO and above to standard error, one line each; quiet the chatty libraries."""
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per vendor call is noise
    logging.getLogger("alembic").setLevel(logging.WARNING)  # /readyz checks migrations

"""Run migrations on the connection `router.db.engine` hands over, or on a URL for the alembic CLI.

`router.db.engine.upgrade()` passes its open connection in `config.attributes["connection"]`.
Developers generating a revision with the `alembic` command instead give the URL as
`-x url=...` or `FIRSTLINE_DATABASE_URL`.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection

from router.db.engine import make_engine
from router.db.tables import metadata

DEFAULT_URL = "sqlite:///./firstline.db"


def _configure_and_run(conn: Connection) -> None:
    """Run the migrations on one connection; SQLite gets batch mode for ALTER TABLE."""
    context.configure(
        connection=conn,
        target_metadata=metadata,
        render_as_batch=conn.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run() -> None:
    """Pick the connection handed over by router.db.engine, else open one from the URL."""
    given = context.config.attributes.get("connection")
    if given is not None:
        _configure_and_run(given)
        return
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get(
        "FIRSTLINE_DATABASE_URL", DEFAULT_URL
    )
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            _configure_and_run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("firstline migrations run online only: give a database URL")
_run()

"""Parameters the read API and the dashboard share: record ids, bounded to what a query
can carry."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

MAX_ID = 2**63 - 1  # BIGINT: a larger id in a query overflowed the driver (500)
RecordId = Annotated[int, Path(ge=1, le=MAX_ID)]
IdBound = Annotated[int | None, Query(ge=0, le=MAX_ID)]  # a page's `before` or `after`

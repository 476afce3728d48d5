"""Parameters the read API and the dashboard share: record ids, bounded to what a query
can carry."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Path, Query, Request

MAX_ID = 2**63 - 1  # BIGINT: a larger id in a query overflowed the driver (500)
RecordId = Annotated[int, Path(ge=1, le=MAX_ID)]
IdBound = Annotated[int | None, Query(ge=0, le=MAX_ID)]  # a page's `before` or `after`


def refuse_repeated(request: Request) -> None:
    """Refuse a query parameter given more than once (400): every parameter here takes one
    value, and taking the last (FastAPI's way) would silently drop the others."""
    keys = [key for key, _ in request.query_params.multi_items()]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise HTTPException(400, f"give {', '.join(map(repr, repeated))} once")

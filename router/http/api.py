"""The read side (SPEC §6): decisions, escalations and the scope note, behind a bearer token."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import orjson
from fastapi import APIRouter, Depends, Header, HTTPException, Query
from sqlalchemy import Engine, select

from router.core.durations import parse_since
from router.core.model import OUTCOMES, SOURCES
from router.db.tables import decisions, escalation_items, escalations
from router.scope.load import Scope
from router.settings import Settings

MAX_LIMIT = 1000


def read_api(settings: Settings, engine: Engine, scope: Callable[[], Scope]) -> APIRouter:
    """Build the /api/v1 router; every route needs `Authorization: Bearer <API_TOKEN>`."""
    token = settings.api_token.get_secret_value().encode() if settings.api_token else None

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        given = (authorization or "").removeprefix("Bearer ").strip().encode()
        if token is None or not given or not hmac.compare_digest(given, token):
            raise HTTPException(401, "a valid bearer token is needed (FIRSTLINE_API_TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authorized)])

    @api.get("/decisions")
    def list_decisions(
        source: str | None = None, outcome: str | None = None, item: str | None = None,
        since: Annotated[str | None, Query(description=(
            "a date (midnight in the scope note's timezone) or a time with an offset"))] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        """List decisions, newest first; `next_cursor` pages on."""
        stmt = select(decisions).order_by(decisions.c.id.desc()).limit(limit + 1)
        if source is not None:
            if source not in SOURCES:
                raise HTTPException(400, f"unknown source {source!r}")
            stmt = stmt.where(decisions.c.source == source)
        if outcome is not None:
            if outcome not in OUTCOMES:
                raise HTTPException(400, f"unknown outcome {outcome!r}")
            stmt = stmt.where(decisions.c.outcome == outcome)
        if item is not None:
            stmt = stmt.where(decisions.c.item_key == item)
        if since is not None:
            stmt = stmt.where(decisions.c.event_at >= _since(since, scope().tz))
        if cursor is not None:
            if not cursor.isdigit():
                raise HTTPException(400, "cursor: use the next_cursor of a previous answer")
            stmt = stmt.where(decisions.c.id < int(cursor))
        with engine.connect() as conn:
            rows = conn.execute(stmt).all()
        more = len(rows) > limit
        rows = rows[:limit]
        return {"items": [_decision(r) for r in rows],
                "next_cursor": str(rows[-1].id) if more else None}

    @api.get("/decisions/{decision_id}")
    def get_decision(decision_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(select(decisions).where(decisions.c.id == decision_id)).first()
        if row is None:
            raise HTTPException(404, f"no decision {decision_id}")
        return {**_decision(row), "reason": row.reason, "severity": row.severity,
                "scope": row.scope_line, "evidence": orjson.loads(row.evidence),
                "actions": orjson.loads(row.actions), "scope_hash": row.scope_hash}

    @api.get("/escalations")
    def list_escalations(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100) \
            -> dict[str, Any]:
        with engine.connect() as conn:
            rows = conn.execute(select(escalations).order_by(escalations.c.id.desc())
                                .limit(limit)).all()
            return {"items": [_escalation(conn, r) for r in rows]}

    @api.get("/escalations/{escalation_id}")
    def get_escalation(escalation_id: int) -> dict[str, Any]:
        with engine.connect() as conn:
            row = conn.execute(select(escalations).where(
                escalations.c.id == escalation_id)).first()
            if row is None:
                raise HTTPException(404, f"no escalation {escalation_id}")
            return _escalation(conn, row)

    @api.get("/scope")
    def get_scope() -> dict[str, Any]:
        current = scope()
        return {"path": current.path, "hash": current.hash, "mode": current.mode,
                "note": current.note.model_dump(mode="json", by_alias=True, exclude_unset=True)}

    return api


def _since(text: str, tz: ZoneInfo) -> datetime:
    try:
        return parse_since(text, tz)
    except ValueError as exc:
        raise HTTPException(400, f"since: {exc}") from None


def _decision(row: Any) -> dict[str, Any]:
    return {"id": row.id, "delivery_id": row.delivery_id, "source": row.source,
            "item_key": row.item_key, "outcome": row.outcome, "owner": row.owner,
            "triggers": orjson.loads(row.triggers), "event_at": row.event_at.isoformat(),
            "decided_at": row.decided_at.isoformat()}


def _escalation(conn: Any, row: Any) -> dict[str, Any]:
    members = conn.execute(select(escalation_items.c.source, escalation_items.c.item_key,
                                  escalation_items.c.open).where(
        escalation_items.c.escalation_id == row.id)).all()
    return {"id": row.id, "trigger": row.trigger_id, "dedup_key": row.dedup_key,
            "status": row.status, "decision_id": row.decision_id,
            "paged_at": row.paged_at.isoformat(),
            "acknowledged_at": row.acknowledged_at.isoformat() if row.acknowledged_at else None,
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
            "items": [{"source": s, "key": k, "open": o} for s, k, o in members]}

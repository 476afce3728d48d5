"""POST /webhooks/{source}: verify, store the raw delivery, acknowledge (SPEC §6).

Kept as plain ASGI (with its hand-written OpenAPI entry below), not a FastAPI route: it
pays. bench/ingest.py, A/B in one run, accepted/s of the same checks and group commit
behind this route and behind a FastAPI route: 1.39x on SQLite, 1.62x on PostgreSQL.
Before the answer it only checks size, signature and that the body is a JSON object:
normalizing and deciding are the worker's job, after the commit. Each accepted delivery
is logged at INFO (source, delivery id, inbox id).

Commits are grouped (router.db.group_commit): concurrent requests share one transaction, and each
is still answered only after its own row is committed.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson
from starlette.types import Receive, Scope, Send

from adapters.base import InboundAdapter, SignatureError, VerifyContext
from router.db.group_commit import InboxWriter, StorageUnavailable
from router.db.inbox import Delivery
from router.db.tables import DELIVERY_ID_MAX
from router.settings import Settings

log = logging.getLogger(__name__)

PREFIX = "/webhooks/"
# GitHub names its event in a header; the other vendors put it in the body.
EVENT_TYPE_HEADERS = {"github": "x-github-event"}
EVENT_TYPE_MAX = 100
# Headers that carry or derive from a credential are never stored.
_SECRET_HEADER_PARTS = ("signature", "authorization", "cookie", "token", "secret", "api-key")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

Record = Callable[[str, str], None]  # (source, result) -> None, for /metrics


class WebhookIngest:
    """Answers /webhooks/{source}; `FirstlineApp` hands it those requests directly."""

    def __init__(
        self,
        settings: Settings,
        adapters: Mapping[str, InboundAdapter],
        writer: InboxWriter,
        record: Record,
    ) -> None:
        self._adapters = adapters
        self._secrets = {
            source: settings.webhook_secrets(adapter.source) for source, adapter in adapters.items()
        }
        self._allow_unsigned = settings.allow_unsigned
        self._max_body = settings.max_body_bytes
        self._linear_max_age = settings.linear_max_age
        self._writer = writer
        self._record = record

    async def handle(self, source: str, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer one request for /webhooks/{source}."""
        adapter = self._adapters.get(source)
        if adapter is None:
            await _answer(send, 404, _detail(f"unknown webhook source {source!r}"))
            return
        if scope["method"] != "POST":
            await _answer(send, 405, _detail("use POST"), [(b"allow", b"POST")])
            return
        try:
            status, body = await self._handle(source, adapter, scope, receive)
        except Exception:
            # This route bypasses FastAPI's error middleware, so it keeps its own last
            # resort: log the bug, never send a traceback.
            log.exception("unexpected error receiving a %s delivery", source)
            status, body = 500, _detail("internal error")
        await _answer(send, status, body)

    async def _handle(
        self, source: str, adapter: InboundAdapter, scope: Scope, receive: Receive
    ) -> tuple[int, bytes]:
        """Run the checks of SPEC §6 in order; return the status and JSON body to send."""
        headers = _headers(scope)
        payload = await _read_body(receive, headers.get("content-length"), self._max_body)
        if isinstance(payload, Rejected):
            return self._reject(source, payload)
        problem = self._verify(source, adapter, payload, headers)
        if problem is not None:
            return self._reject(source, problem)
        try:
            parsed = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return self._reject(source, _not_json(exc, headers.get("content-type", "")))
        if type(parsed) is not dict:  # every vendor sends an object; the worker needs one
            return self._reject(source, Rejected(
                400, "bad_request", f"body is not a JSON object but {_json_kind(parsed)}"))
        delivery = _delivery(source, adapter, payload, headers)
        if isinstance(delivery, Rejected):
            return self._reject(source, delivery)
        try:
            stored = await self._writer.save(delivery)
        except StorageUnavailable:
            self._record(source, "unavailable")
            return 503, _detail("storage is unavailable; retry later")
        self._record(source, stored.status)
        if stored.id is None:
            log.info("duplicate %s delivery %r: already stored", source, delivery.delivery_id)
            return 200, b'{"status":"duplicate"}'
        log.info("accepted %s delivery %r as inbox %d", source, delivery.delivery_id, stored.id)
        return (200 if source == "linear" else 202), b'{"status":"accepted","id":%d}' % stored.id

    def _verify(
        self, source: str, adapter: InboundAdapter, body: bytes, headers: dict[str, str]
    ) -> Rejected | None:
        """Check the vendor signature; a source without a secret takes nothing unless allowed."""
        secrets = self._secrets[source]
        if not secrets:
            if self._allow_unsigned:
                return None
            return Rejected(
                401, "unauthorized",
                f"no webhook secret is configured for {source}: set "
                f"FIRSTLINE_{source.upper()}_WEBHOOK_SECRET (or FIRSTLINE_ALLOW_UNSIGNED=true)",
            )
        context = VerifyContext(secrets=secrets, now=time.time(), max_age=self._linear_max_age)
        try:
            adapter.verify(body, headers, context)
        except SignatureError as exc:
            return Rejected(401, "unauthorized", str(exc))
        except ValueError as exc:
            return Rejected(400, "bad_request", str(exc))
        return None

    def _reject(self, source: str, rejected: Rejected) -> tuple[int, bytes]:
        log.info("refused a %s delivery (%d): %s", source, rejected.status, rejected.detail)
        self._record(source, rejected.result)
        return rejected.status, _detail(rejected.detail)


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a delivery is refused: HTTP status, metrics label, and the detail to send."""

    status: int
    result: str
    detail: str


def webhook_source(scope: Scope) -> str | None:
    """Return `{source}` when the request is for /webhooks/{source}, else None.

    ASGI paths include the `root_path` the app is mounted under, so strip it first.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path[len(PREFIX) :] if path.startswith(PREFIX) else None


def _headers(scope: Scope) -> dict[str, str]:
    """Decode the request headers; ASGI servers lower-case the names. The first one wins."""
    out: dict[str, str] = {}
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if key not in out:
            out[key] = value.decode("latin-1")
    return out


async def _read_body(receive: Receive, length: str | None, limit: int) -> bytes | Rejected:
    """Read the body, refusing it as soon as it is known to exceed `limit` bytes.

    Content-Length is checked first so a large body is refused unread; a chunked body
    (no Content-Length) is counted as it streams in.
    """
    too_large = Rejected(413, "too_large", f"body is over the limit of {limit} bytes")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            return Rejected(400, "bad_request", "Content-Length is not a number")
        if int(length) > limit:
            return too_large
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return Rejected(400, "bad_request", "client disconnected before the body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return too_large
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _delivery(
    source: str, adapter: InboundAdapter, body: bytes, headers: dict[str, str]
) -> Delivery | Rejected:
    """Build the inbox row: vendor delivery id (else a body hash) and the safe headers."""
    delivery_id = adapter.delivery_id(headers) or "sha256:" + hashlib.sha256(body).hexdigest()
    if len(delivery_id) > DELIVERY_ID_MAX:
        return Rejected(400, "bad_request", "delivery id is longer than 255 characters")
    event_header = EVENT_TYPE_HEADERS.get(source)
    event_type = headers.get(event_header) if event_header else None
    if event_type is not None and len(event_type) > EVENT_TYPE_MAX:
        return Rejected(400, "bad_request", f"{event_header} is longer than {EVENT_TYPE_MAX}")
    # Both are stored, logged and shown: a line break would forge log lines. uvicorn's
    # parsers refuse such headers already; other ASGI servers may pass them on.
    if _CONTROL.search(delivery_id) or (event_type and _CONTROL.search(event_type)):
        return Rejected(400, "bad_request", "the delivery id or event type header holds a "
                                            "line break or another control character")
    kept = {k: v for k, v in headers.items() if not _is_secret_header(k)}
    return Delivery(
        source=source,
        delivery_id=delivery_id,
        event_type=event_type,
        headers=orjson.dumps(kept).decode(),
        body=body,
        received_at=datetime.now(UTC),
    )


@lru_cache(maxsize=256)
def _is_secret_header(name: str) -> bool:
    """Tell whether a header carries a credential; cached, as the same few names recur."""
    return any(part in name for part in _SECRET_HEADER_PARTS)


def _json_kind(value: Any) -> str:
    """Name a JSON value's type as JSON does: array, string, number, true/false, null."""
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "true/false"
    return "null" if value is None else "a number"


def _not_json(exc: orjson.JSONDecodeError, content_type: str) -> Rejected:
    """Say why a body is not JSON; a form-encoded one is a webhook set up for forms."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        return Rejected(400, "bad_request", "body is form-encoded, not JSON: set the "
                                            "webhook's content type to application/json")
    return Rejected(400, "bad_request", f"body is not JSON: {exc}")


def _detail(message: str) -> bytes:
    return orjson.dumps({"detail": message})


async def _answer(
    send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send a complete JSON response."""
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# Documents the route in /openapi.json, since it is not a FastAPI route (see module doc).
OPENAPI_PATHS: dict[str, Any] = {
    "/webhooks/{source}": {
        "post": {
            "summary": "Receive one vendor webhook delivery",
            "description": (
                "Verifies the vendor signature, stores the raw delivery, and answers once it "
                "is committed. Linear gets 200 instead of 202."
            ),
            "operationId": "receive_webhook",
            "parameters": [
                {
                    "name": "source", "in": "path", "required": True,
                    "schema": {"type": "string", "enum": ["jira", "linear", "github", "pagerduty"]},
                }
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
            "responses": {
                "202": {"description": "stored: {\"status\": \"accepted\", \"id\": 1}"},
                "200": {"description": "Linear accepted, or {\"status\": \"duplicate\"}"},
                "400": {"description": "body is not a JSON object, or a header is malformed"},
                "401": {"description": "bad or missing signature, or no secret configured"},
                "404": {"description": "unknown source"},
                "413": {"description": "body over FIRSTLINE_MAX_BODY_BYTES"},
                "503": {"description": "storage unavailable; the sender retries"},
            },
        }
    }
}

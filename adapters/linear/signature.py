"""Linear's webhook headers: the `Linear-Signature` check with the delivery's age, and its id.

Kept apart from parsing because the webhook route needs only these two before it stores
a delivery (refuse a forgery or a replay, recognise a retry); the body is parsed later,
from what was stored.
"""

from __future__ import annotations

import hashlib
import hmac

import orjson

from adapters.base import Headers, SignatureError, VerifyContext
from router.core.model import PayloadError

SIGNATURE_HEADER = "linear-signature"
DELIVERY_HEADER = "linear-delivery"


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a delivery unless `Linear-Signature` matches a secret and it is recent.

    The header is the hex HMAC-SHA256 of the raw body; every configured secret is tried
    so a secret can be rotated. The body's `webhookTimestamp` (ms) must lie within
    `ctx.max_age` seconds of `ctx.now`, so a captured delivery cannot be replayed later.
    The age is checked only after the signature, when the timestamp can be trusted.
    """
    received = (headers.get(SIGNATURE_HEADER) or "").strip().lower()
    if not received:
        raise SignatureError("linear: Linear-Signature header is missing")
    if len(received) != 64 or not all(c in "0123456789abcdef" for c in received):
        raise SignatureError("linear: Linear-Signature is malformed (expected 64 hex digits)")
    if not ctx.secrets:
        raise SignatureError("linear: no webhook secret is configured")
    if not any(
        hmac.compare_digest(hmac.new(s, body, hashlib.sha256).hexdigest(), received)
        for s in ctx.secrets
    ):
        raise SignatureError("linear: Linear-Signature matches none of the configured secrets")
    _check_age(body, ctx)


def _check_age(body: bytes, ctx: VerifyContext) -> None:
    """Refuse a signed delivery whose `webhookTimestamp` is missing or too far from now.

    A signed body that is not JSON raises PayloadError instead: it is bad input (400),
    not a bad signature.
    """
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise PayloadError(f"linear: body is not JSON: {exc}") from exc
    stamp = payload.get("webhookTimestamp") if isinstance(payload, dict) else None
    if not isinstance(stamp, int | float) or isinstance(stamp, bool):
        raise SignatureError("linear: webhookTimestamp is missing, so the age is unknown")
    age = abs(ctx.now - stamp / 1000.0)
    if age > ctx.max_age:
        raise SignatureError(
            f"linear: delivery is stale: webhookTimestamp is {age:.0f} s from now "
            f"(limit {ctx.max_age:.0f} s)"
        )


def delivery_id(headers: Headers) -> str | None:
    """Return Linear's delivery id; the caller falls back to a body hash without one."""
    return headers.get(DELIVERY_HEADER) or None

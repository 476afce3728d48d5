"""GitHub's webhook headers: the `X-Hub-Signature-256` check and the `X-GitHub-Delivery` id.

Kept apart from parsing because the webhook route needs only these two before it stores
a delivery (refuse a forgery, recognise a redelivery); the body is parsed later, from
what was stored.
"""

from __future__ import annotations

import hashlib
import hmac

from adapters.base import Headers, SignatureError, VerifyContext

SIGNATURE_HEADER = "x-hub-signature-256"
DELIVERY_HEADER = "x-github-delivery"
_SIGNATURE_PREFIX = "sha256="
_DIGEST_BYTES = 32


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a body whose `X-Hub-Signature-256` no configured secret produced.

    GitHub signs the raw body with HMAC-SHA256 and sends `sha256=<hex>`; every secret in
    `ctx.secrets` is tried so a secret can be rotated without dropping deliveries.
    """
    given = _signature(headers.get(SIGNATURE_HEADER))
    for secret in ctx.secrets:
        expected = hmac.new(secret, body, hashlib.sha256).digest()
        if hmac.compare_digest(expected, given):
            return
    raise SignatureError("X-Hub-Signature-256 matches none of the configured GitHub secrets")


def _signature(header: str | None) -> bytes:
    """Decode `sha256=<64 hex digits>`, so a malformed header is told apart from a wrong one."""
    if not header:
        raise SignatureError("X-Hub-Signature-256 header is missing")
    value = header.strip()
    if not value.startswith(_SIGNATURE_PREFIX):
        raise SignatureError("X-Hub-Signature-256 header is malformed: expected sha256=<hex>")
    try:
        digest = bytes.fromhex(value[len(_SIGNATURE_PREFIX) :])
    except ValueError:
        digest = b""
    if len(digest) != _DIGEST_BYTES:
        raise SignatureError("X-Hub-Signature-256 header is malformed: expected 64 hex digits")
    return digest


def delivery_id(headers: Headers) -> str | None:
    """Return GitHub's `X-GitHub-Delivery` GUID, which makes redeliveries duplicates."""
    return headers.get(DELIVERY_HEADER) or None

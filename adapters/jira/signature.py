"""Jira's webhook headers: the `X-Hub-Signature` check and the delivery id.

Kept apart from parsing because the webhook route needs only these two before it stores
a delivery (refuse a forgery, recognise a retry); the body is parsed later, from what
was stored.
"""

from __future__ import annotations

import hashlib
import hmac

from adapters.base import Headers, SignatureError, VerifyContext

SIGNATURE_HEADER = "x-hub-signature"
DELIVERY_HEADER = "x-atlassian-webhook-identifier"

# WebSub `method=signature`: Jira Cloud sends sha256; Data Center documents sha256 as the
# default algorithm, so the other SHA-2 sizes are accepted too. sha1 is not.
_ALGORITHMS = {"sha256": hashlib.sha256, "sha384": hashlib.sha384, "sha512": hashlib.sha512}


def verify(body: bytes, headers: Headers, ctx: VerifyContext) -> None:
    """Refuse a delivery unless `X-Hub-Signature` is an HMAC of the body under a secret.

    The header reads `sha256=<hex>` (WebSub `method=signature`). Every configured secret
    is tried, so a secret can be rotated without dropping deliveries.
    """
    header = headers.get(SIGNATURE_HEADER)
    if not header:
        raise SignatureError("jira: X-Hub-Signature header is missing")
    method, sep, received = header.strip().partition("=")
    digestmod = _ALGORITHMS.get(method.lower())
    if not sep or digestmod is None:
        raise SignatureError("jira: X-Hub-Signature is malformed (expected sha256=<hex>)")
    received = received.lower()
    if len(received) != 2 * digestmod().digest_size or not _is_hex(received):
        raise SignatureError("jira: X-Hub-Signature is malformed (expected sha256=<hex>)")
    if not ctx.secrets:
        raise SignatureError("jira: no webhook secret is configured")
    for secret in ctx.secrets:
        expected = hmac.new(secret, body, digestmod).hexdigest()
        if hmac.compare_digest(expected, received):
            return
    raise SignatureError("jira: X-Hub-Signature matches none of the configured secrets")


def _is_hex(text: str) -> bool:
    """Tell whether text is lower-case hex, so a malformed header is named as such."""
    return all(c in "0123456789abcdef" for c in text)


def delivery_id(headers: Headers) -> str | None:
    """Return Jira's delivery id, which stays the same across retries of one delivery."""
    return headers.get(DELIVERY_HEADER) or None

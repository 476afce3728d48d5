"""GitHub. Inbound: verify `X-Hub-Signature-256`, read `X-GitHub-Delivery`, parse.

Both directions of one vendor: `inbound` verifies and parses webhooks (pure), `outbound`
performs actions through the vendor's API.
"""

from adapters.github.inbound import (
    DELIVERY_HEADER,
    ITEM_EVENTS,
    JSON,
    SIGNATURE_HEADER,
    adapter,
    delivery_id,
    infer_event_type,
    parse,
    verify,
)
from adapters.github.outbound import (
    API_VERSION,
    TIMEOUT,
    GitHubOutbound,
    comment_marker,
    outbound,
)

__all__ = [
    "API_VERSION",
    "DELIVERY_HEADER",
    "ITEM_EVENTS",
    "JSON",
    "SIGNATURE_HEADER",
    "TIMEOUT",
    "GitHubOutbound",
    "adapter",
    "comment_marker",
    "delivery_id",
    "infer_event_type",
    "outbound",
    "parse",
    "verify",
]

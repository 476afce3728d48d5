"""Linear, inbound: verify `Linear-Signature` and the delivery's age, parse a webhook.

Both directions of one vendor: `inbound` verifies and parses webhooks (pure), `outbound`
performs actions through the vendor's API.
"""

from adapters.base import retry_after
from adapters.linear.inbound import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    adapter,
    default_severity,
    delivery_id,
    parse,
    verify,
)
from adapters.linear.outbound import (
    RATE_LIMITED,
    RESET_HEADER,
    TIMEOUT,
    LinearOutbound,
    comment_id,
    linear_retry_after,
    outbound,
)

__all__ = [
    "DELIVERY_HEADER",
    "RATE_LIMITED",
    "RESET_HEADER",
    "SIGNATURE_HEADER",
    "TIMEOUT",
    "LinearOutbound",
    "adapter",
    "comment_id",
    "default_severity",
    "delivery_id",
    "linear_retry_after",
    "outbound",
    "parse",
    "retry_after",
    "verify",
]

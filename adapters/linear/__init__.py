"""Linear, inbound: verify `Linear-Signature` and the delivery's age, parse a webhook.

Both directions of one vendor: `inbound` verifies and parses webhooks (pure; the issue's
fields are read in `issue`), `outbound` performs actions through the vendor's API (its
GraphQL operations, each call and its failures in `client`).
"""

from adapters.base import retry_after
from adapters.linear.client import RATE_LIMITED, RESET_HEADER, linear_retry_after
from adapters.linear.inbound import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    adapter,
    delivery_id,
    parse,
    verify,
)
from adapters.linear.issue import default_severity
from adapters.linear.outbound import (
    TIMEOUT,
    LinearOutbound,
    comment_id,
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

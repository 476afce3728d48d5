"""Linear, inbound: verify `Linear-Signature` and the delivery's age, parse a webhook.

Both directions of one vendor: `inbound` parses webhooks (pure; `signature` checks their
headers and age, `items` reads the issue's fields), `outbound` performs actions through
the vendor's API (`client` holds its GraphQL operations and sends each call).
"""

from adapters.base import retry_after
from adapters.linear.client import RATE_LIMITED, RESET_HEADER, linear_retry_after
from adapters.linear.inbound import adapter, parse
from adapters.linear.items import default_severity
from adapters.linear.outbound import (
    TIMEOUT,
    LinearOutbound,
    comment_id,
    outbound,
)
from adapters.linear.signature import DELIVERY_HEADER, SIGNATURE_HEADER, delivery_id, verify

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

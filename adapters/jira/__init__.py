"""Jira Cloud. Inbound: verify `X-Hub-Signature`, read the delivery id, parse a webhook.

Both directions of one vendor: `inbound` verifies and parses webhooks (pure), `outbound`
performs actions through the vendor's API.
"""

from adapters.jira.inbound import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    adapter,
    default_severity,
    delivery_id,
    parse,
    verify,
)
from adapters.jira.outbound import (
    COMMENT_PROPERTY,
    TIMEOUT,
    JiraOutbound,
    outbound,
)

__all__ = [
    "COMMENT_PROPERTY",
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMEOUT",
    "JiraOutbound",
    "adapter",
    "default_severity",
    "delivery_id",
    "outbound",
    "parse",
    "verify",
]

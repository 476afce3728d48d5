"""Jira Cloud. Inbound: verify `X-Hub-Signature`, read the delivery id, parse a webhook.

Both directions of one vendor: `inbound` verifies and parses webhooks (pure; the issue's
fields are read in `issue`, its changelog in `changelog`), `outbound` performs actions
through the vendor's API (each request and its failures in `client`).
"""

from adapters.jira.inbound import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    adapter,
    delivery_id,
    parse,
    verify,
)
from adapters.jira.issue import default_severity
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

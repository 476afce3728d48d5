"""Jira Cloud. Inbound: verify `X-Hub-Signature`, read the delivery id, parse a webhook.

Both directions of one vendor: `inbound` parses webhooks (pure; `signature` checks their
headers, `items` reads the issue's fields, `changelog` what an update changed), `outbound`
performs actions through the vendor's API (`client` sends each request).
"""

from adapters.jira.inbound import adapter, parse
from adapters.jira.items import default_severity
from adapters.jira.outbound import (
    COMMENT_PROPERTY,
    TIMEOUT,
    JiraOutbound,
    outbound,
)
from adapters.jira.signature import DELIVERY_HEADER, SIGNATURE_HEADER, delivery_id, verify

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

"""PagerDuty v3 webhooks, inbound side: verify `X-PagerDuty-Signature`, read `X-Webhook-Id`, parse.

Both directions of one vendor: `inbound` verifies and parses webhooks (pure), `outbound`
performs actions through the vendor's API.
"""

from adapters.base import retry_after
from adapters.pagerduty.inbound import (
    DELIVERY_HEADER,
    JSON,
    SIGNATURE_HEADER,
    adapter,
    delivery_id,
    parse,
    verify,
)
from adapters.pagerduty.outbound import (
    PAGE_SEVERITY,
    PAGE_SOURCE,
    TIMEOUT,
    PagerDutyOutbound,
    outbound,
)

__all__ = [
    "DELIVERY_HEADER",
    "JSON",
    "PAGE_SEVERITY",
    "PAGE_SOURCE",
    "SIGNATURE_HEADER",
    "TIMEOUT",
    "PagerDutyOutbound",
    "adapter",
    "delivery_id",
    "outbound",
    "parse",
    "retry_after",
    "verify",
]

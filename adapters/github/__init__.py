"""GitHub. Inbound: verify `X-Hub-Signature-256`, read `X-GitHub-Delivery`, parse.

Both directions of one vendor: `inbound` parses webhooks (pure; `signature` checks their
headers, `items` reads the issue or pull request), `outbound` performs actions through
the vendor's API (`client` sends each request), `deliveries` reads the hooks' delivery log.
"""

from adapters.github.client import API_VERSION, TIMEOUT
from adapters.github.inbound import ITEM_EVENTS, adapter, infer_event_type, parse
from adapters.github.items import JSON
from adapters.github.outbound import GitHubOutbound, comment_marker, outbound
from adapters.github.signature import DELIVERY_HEADER, SIGNATURE_HEADER, delivery_id, verify

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

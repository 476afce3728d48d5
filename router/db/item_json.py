"""An item's newest state as stored in `items.state`: a WorkItem as JSON and back."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson

from router.core.model import WorkItem


def item_to_json(item: WorkItem) -> str:
    # orjson reads the dataclass itself (dataclasses.asdict deep-copies every field, a
    # quarter of the worker's time); sets become sorted lists.
    return orjson.dumps(item, default=_sorted_set).decode()


def _sorted_set(value: Any) -> list[Any]:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot store {type(value).__name__} in an item's state")


def item_from_json(text: str) -> WorkItem:
    data: dict[str, Any] = orjson.loads(text)
    for name in ("created_at", "updated_at", "reopened_at"):
        if data.get(name):
            data[name] = datetime.fromisoformat(data[name])
    data["labels"] = frozenset(data["labels"])
    data["project_aliases"] = frozenset(data["project_aliases"])
    data["assignees"] = tuple(data["assignees"])
    return WorkItem(**data)

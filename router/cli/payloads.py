"""Read recorded vendor payloads from files for `explain` and `replay`.

Every problem becomes an `InputError` naming the file: unreadable, not JSON, or JSON that
is no delivery the named source sends.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import orjson

from router.core.model import SOURCES, Event, PayloadError, Source
from router.core.simulate import Delivery


class InputError(ValueError):
    """A file or argument the user gave that cannot be used; one line, names the file."""


def check_source(name: str) -> Source:
    """Return `name` as a source, or fail naming the known ones."""
    for source in SOURCES:
        if source == name.lower():
            return source
    raise InputError(f"unknown source {name!r} (one of: {', '.join(SOURCES)})")


def load_event(path: Path, source: Source, event_type: str | None = None) -> Event:
    """Read and parse one payload file as a delivery from `source`."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"{path}: not JSON: {exc}") from exc
    # Imported here: the adapters bring their vendors' HTTP clients, which `check` and
    # `scope` never need (`firstline check` took 0.94 s with them, 0.35 s without).
    from adapters import ADAPTERS

    try:
        return ADAPTERS[source].parse(payload, event_type)
    except PayloadError as exc:
        prefix = f"not a {source} delivery: "
        message = str(exc)
        if message.lower().startswith(prefix):  # the adapter said it already
            message = message[len(prefix):]
        raise InputError(f"{path}: {prefix}{message}") from exc


def load_deliveries(paths: list[Path], source: Source | None) -> Iterator[Delivery]:
    """Yield a delivery per file; folders are searched for `*.json` below them.

    A file's source is the name of the nearest `<source>/` folder above it, else `source`.
    """
    for path in paths:
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not files:
                raise InputError(f"{path}: no .json files below this folder")
        elif path.exists():
            files = [path]
        else:
            raise InputError(f"{path}: no such file or folder")
        for file in files:
            yield Delivery(str(file), load_event(file, _source_of(file, source)))


def _source_of(file: Path, default: Source | None) -> Source:
    for parent in file.parents:
        for source in SOURCES:
            if parent.name == source:
                return source
    if default is None:
        raise InputError(f"{file}: cannot tell the source: put it under a jira/, linear/, "
                         "github/ or pagerduty/ folder, or pass --source")
    return default

"""Load YAML while remembering the line of every key and value, for `path:line:` errors."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")

Path = tuple[str | int, ...]


class YamlProblem(ValueError):
    """YAML that does not parse, or repeats a key; carries the 1-based line."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_with_lines(text: str) -> tuple[Any, dict[Path, int]]:
    """Parse `text` and return the data and a map from each key path to its line.

    Times such as `9:00` stay strings (YAML 1.1 would read them as base-60 integers), as
    do other integers not written in plain decimal (`007`, `0x1F`, `1_000`), and a key
    given twice is an error rather than silently keeping the last one.
    """
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem((mark.line + 1) if mark else 1, str(exc.problem or exc)) from exc
    finally:
        loader.dispose()
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    return _build(node, (), lines, loader), lines


def _build(node: yaml.Node, path: Path, lines: dict[Path, int], loader: yaml.SafeLoader) -> Any:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, loader)
            if key in out:
                raise YamlProblem(key_node.start_mark.line + 1, f"key {key!r} is given twice")
            lines[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), lines, loader)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_build(child, (*path, i), lines, loader) for i, child in enumerate(node.value)]
    return _scalar(node, loader)


def _scalar(node: yaml.Node, loader: yaml.SafeLoader) -> Any:
    if isinstance(node, yaml.ScalarNode):
        if node.tag.endswith(":int") and not _PLAIN_INT.fullmatch(node.value):
            # `9:00` (base 60), `007`/`0123` (octal), `0x1F`, `1_002`: YAML 1.1 would turn
            # these into other numbers; keep the text (times, account ids, project keys).
            return node.value
        if node.tag.endswith(":timestamp"):
            return node.value  # dates stay text; the schema parses them
        return loader.construct_object(node, deep=True)
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        raise YamlProblem(node.start_mark.line + 1, "a key must be a plain value")
    return loader.construct_object(node, deep=True)


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int:
    """Return the line of `path`, or of its nearest ancestor present in the file."""
    trail = tuple(path)
    while trail:
        if trail in lines:
            return lines[trail]
        trail = trail[:-1]
    return lines.get((), 1)

"""Load YAML while remembering the line of every key and value, for `path:line:` errors.

A scope note is plain data, and the loader takes nothing else: PyYAML's SafeLoader
composes the document (it never builds objects of a `!!python/...` tag), and every node
is checked here before its value is made. A tag other than YAML's plain ones is refused
with its line; an alias that contains itself, nesting deeper than `MAX_DEPTH` and aliases
that expand past `MAX_VALUES` values (the "billion laughs") are refused too, so no file
can make `check` or `serve` hang or crash. Merge keys (`<<: *defaults`) work as in YAML 1.1.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import yaml

_PLAIN_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)")
_YAML_TAG = "tag:yaml.org,2002:"
_PLAIN_TAGS = frozenset(f"{_YAML_TAG}{name}" for name in
                        ("str", "int", "float", "bool", "null", "timestamp", "map", "seq"))
_MERGE = f"{_YAML_TAG}merge"
MAX_DEPTH = 64  # a scope note is a handful of levels deep; `not`/`any` nest a few more
MAX_VALUES = 20_000  # ten times the values of a large scope note (1 s to build 100,000)

Path = tuple[str | int, ...]
_Pair = tuple[yaml.Node, yaml.Node, bool]  # key, value, and whether `<<` merged it in


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
    loader = None
    try:
        loader = yaml.SafeLoader(text)
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise YamlProblem((mark.line + 1) if mark else 1, str(exc.problem or exc)) from exc
    except yaml.reader.ReaderError as exc:  # a control character, before any mark exists
        line = text.count("\n", 0, max(exc.position, 0)) + 1
        raise YamlProblem(line, f"control character {exc.character:#04x} is not "
                                 "allowed") from exc
    except RecursionError:
        raise YamlProblem(1, f"nested more than {MAX_DEPTH} levels deep") from None
    finally:
        if loader is not None:
            loader.dispose()
    lines: dict[Path, int] = {}
    if node is None:
        return None, lines
    return _Builder(loader, lines).build(node, (), 0), lines


class _Builder:
    """Turn composed nodes into plain values, recording lines and enforcing the limits."""

    def __init__(self, loader: yaml.SafeLoader, lines: dict[Path, int]) -> None:
        self.loader = loader
        self.lines = lines
        self.values = 0
        self.open: set[int] = set()  # ids of the collections being built (for cycles)

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.lines.setdefault(path, line)
        self._check(node, depth)
        if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            return self.scalar(node)
        self.open.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return [self.build(child, (*path, i), depth + 1)
                        for i, child in enumerate(node.value)]
            out: dict[Any, Any] = {}
            for key_node, value_node, merged in self._pairs(node, depth):
                key = self.scalar(key_node)
                if key in out:
                    if merged:  # a key given in the mapping itself wins over a merged one
                        continue
                    raise YamlProblem(key_node.start_mark.line + 1, f"key {key!r} is given twice")
                self.lines[(*path, key)] = key_node.start_mark.line + 1
                out[key] = self.build(value_node, (*path, key), depth + 1)
            return out
        finally:
            self.open.discard(id(node))

    def _check(self, node: yaml.Node, depth: int) -> None:
        line = node.start_mark.line + 1
        _plain(node)
        if id(node) in self.open:
            raise YamlProblem(line, "an alias refers to the mapping or list that contains it")
        if depth > MAX_DEPTH:
            raise YamlProblem(line, f"nested more than {MAX_DEPTH} levels deep")
        self.values += 1
        if self.values > MAX_VALUES:
            raise YamlProblem(line, f"aliases expand the scope note past {MAX_VALUES} values")

    def _pairs(self, node: yaml.MappingNode, depth: int) -> list[_Pair]:
        """Return the mapping's own pairs, then those `<<` merges in, in merge order."""
        own: list[_Pair] = []
        merged: list[_Pair] = []
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                own.append((key_node, value_node, False))
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise YamlProblem(source.start_mark.line + 1,
                                      "`<<` merges a mapping or a list of mappings")
                self._check(source, depth + 1)
                self.open.add(id(source))
                try:
                    merged += [(k, v, True) for k, v, _ in self._pairs(source, depth + 1)]
                finally:
                    self.open.discard(id(source))
        return own + merged

    def scalar(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            raise YamlProblem(node.start_mark.line + 1, "a key must be a plain value")
        _plain(node)  # keys too: they are built here, not by `build`
        if node.tag.endswith(":int") and not _PLAIN_INT.fullmatch(node.value):
            # `9:00` (base 60), `007`/`0123` (octal), `0x1F`, `1_002`: YAML 1.1 would turn
            # these into other numbers; keep the text (times, account ids, project keys).
            return node.value
        if node.tag.endswith(":timestamp"):
            return node.value  # dates stay text; the schema parses them
        return self.loader.construct_object(node, deep=True)


def _plain(node: yaml.Node) -> None:
    """Refuse a node tagged as anything but YAML's plain types (`!!python/...`, `!foo`)."""
    if node.tag not in _PLAIN_TAGS:
        shown = node.tag.replace(_YAML_TAG, "!!")
        raise YamlProblem(node.start_mark.line + 1, f"tag {shown} is not allowed: a scope "
                                                    "note holds plain values, mappings and "
                                                    "lists only")


def line_of(lines: dict[Path, int], path: Sequence[str | int]) -> int:
    """Return the line of `path`, or of its nearest ancestor present in the file."""
    trail = tuple(path)
    while trail:
        if trail in lines:
            return lines[trail]
        trail = trail[:-1]
    return lines.get((), 1)

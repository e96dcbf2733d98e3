"""The parsing half of ``tea.yamlsrc``: PyYAML composes, this module builds located data."""

from __future__ import annotations

from typing import Any

import yaml

from tea.errors import Location, WorkflowSyntaxError
from tea.yamlsrc import LocDict, LocList

__all__ = ["parse"]

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _BaseLoader = yaml.SafeLoader


def _loc(node: yaml.Node, file: str | None) -> Location:
    mark = node.start_mark
    return Location(file, mark.line + 1, mark.column + 1)


_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CONTAINER_TAGS = frozenset({"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})


class _Converter:
    """Composed YAML nodes → ``LocDict``/``LocList``/scalars.

    libyaml composes (fast, in C); this walk builds the located containers, and
    scalars other than plain strings go through PyYAML's own safe constructors.
    """

    def __init__(self, file: str | None) -> None:
        self.file = file
        self.scalars = yaml.SafeLoader("")

    def convert(self, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            if node.tag == _STR_TAG:
                return node.value
            return self.scalars.construct_object(node, deep=True)
        if node.tag not in _CONTAINER_TAGS:
            raise WorkflowSyntaxError(
                f"unsupported YAML tag '{node.tag}'", _loc(node, self.file),
                hint="workflows are plain data: remove the tag",
            )
        if isinstance(node, yaml.SequenceNode):
            out = LocList(self.convert(child) for child in node.value)
            out.loc = _loc(node, self.file)
            out.item_locs = [_loc(child, self.file) for child in node.value]
            return out
        assert isinstance(node, yaml.MappingNode)
        return self.mapping(node)

    def mapping(self, node: yaml.MappingNode) -> LocDict:
        out = LocDict()
        out.loc = _loc(node, self.file)
        out.key_locs = {}
        value_locs: dict[str, Location] = {}
        merged_keys: set[Any] = set()
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged = self.convert(value_node)
                for part in merged if isinstance(merged, list) else [merged]:
                    for key, value in part.items():
                        if key not in out:
                            out[key] = value
                            merged_keys.add(key)
                continue
            key = self.convert(key_node)
            if isinstance(key, list | dict):
                raise WorkflowSyntaxError("a mapping key must be a scalar", _loc(key_node, self.file))
            if key in merged_keys:
                merged_keys.discard(key)
            elif key in out:
                raise WorkflowSyntaxError(
                    f"duplicate key '{key}' in the same mapping",
                    _loc(key_node, self.file),
                    hint="remove or rename one of them",
                )
            out[key] = self.convert(value_node)
            out.key_locs[key] = _loc(key_node, self.file)
            value_locs[key] = _loc(value_node, self.file)
        out.value_locs = value_locs  # type: ignore[attr-defined]
        return out


def parse(text: str, file: str | None = None) -> Any:
    """Parse ``text``; a syntax error becomes ``WorkflowSyntaxError`` with file and line."""
    try:
        node = yaml.compose(text, Loader=_BaseLoader)
        try:
            return None if node is None else _Converter(file).convert(node)
        except RecursionError:
            raise WorkflowSyntaxError(
                "a YAML alias contains itself (or the document nests too deeply)", Location(file),
                hint="an anchor (&name) cannot be used (*name) inside its own value",
            ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and "end of stream" in (exc.problem or ""):
            mark = exc.context_mark  # an unclosed quote or bracket: point where it opens
        location = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = exc.problem or exc.context or "invalid YAML"
        raise WorkflowSyntaxError(
            f"YAML syntax error: {problem}",
            location,
            hint="check the indentation and quoting around this line",
        ) from None
    except yaml.YAMLError as exc:
        raise WorkflowSyntaxError(f"YAML error: {exc}", Location(file)) from None

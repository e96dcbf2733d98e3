"""YAML reading that remembers where every mapping, key and item came from.

``load_yaml`` returns plain-looking data whose mappings are ``LocDict`` and whose
lists are ``LocList``: ordinary ``dict``/``list`` subclasses that also know their
``Location`` and the location of each key or item, so every later error can name
the file and line. PyYAML composes the document (libyaml's C composer when
present) and ``_Converter`` builds the located containers from its nodes. PyYAML
is imported by the first ``load_yaml``: modules that only read locations (and the
process workers that import them) never pay for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tea.errors import Location, WorkflowSyntaxError

if TYPE_CHECKING:
    import yaml

__all__ = ["MAX_ALIAS_EXPANSION", "LocDict", "LocList", "load_yaml", "located", "location_of"]


class LocDict(dict[str, Any]):
    """A dict that knows where it and each of its keys sit in the file."""

    loc: Location = Location()
    key_locs: dict[str, Location]

    def key_loc(self, key: str) -> Location:
        locs: dict[str, Location] = getattr(self, "key_locs", {})
        return locs.get(key, self.loc)

    def value_loc(self, key: str) -> Location:
        own: Location | None = getattr(self.get(key), "loc", None)
        locs: dict[str, Location] = getattr(self, "value_locs", {})
        return own or locs.get(key, self.key_loc(key))


class LocList(list[Any]):
    """A list that knows where it and each of its items sit in the file."""

    loc: Location = Location()
    item_locs: list[Location]

    def item_loc(self, index: int) -> Location:
        locs = getattr(self, "item_locs", [])
        return locs[index] if index < len(locs) else self.loc


def location_of(obj: Any, key: str | int | None = None) -> Location:
    """The location of ``obj`` (or of its key/item), or an empty location for plain data."""
    if key is not None:
        if isinstance(obj, LocDict) and isinstance(key, str):
            return obj.key_loc(key)
        if isinstance(obj, LocList) and isinstance(key, int):
            return obj.item_loc(key)
    return getattr(obj, "loc", Location())


def located(values: Mapping[str, Any], where: Any, renamed: Mapping[str, str] | None = None) -> LocDict:
    """``values`` as a ``LocDict`` whose keys point into ``where`` (a mapping from the file).

    For settings gathered from several places: ``renamed`` maps a key of ``values``
    to the key it was written as (``strategy`` came from ``parallel_strategy``).
    """
    out = LocDict(values)
    out.loc = location_of(where)
    out.key_locs = {}
    value_locs: dict[str, Location] = {}
    for key in values:
        source = (renamed or {}).get(key, key)
        out.key_locs[key] = getattr(where, "key_locs", {}).get(source, out.loc)
        value_locs[key] = getattr(where, "value_locs", {}).get(source, out.key_locs[key])
    out.value_locs = value_locs  # type: ignore[attr-defined]
    return out


def load_yaml(text: str, file: str | None = None) -> Any:
    """Parse ``text``; a syntax error becomes ``WorkflowSyntaxError`` with file and line."""
    import yaml  # on first use, not at import (see the module docstring)

    try:
        node = yaml.compose(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        try:
            return None if node is None else _Converter(file, yaml.SafeLoader("")).convert(node)
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


MAX_ALIAS_EXPANSION = 100_000
"""The most values that YAML aliases (``*name``) may expand to in one document."""

_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_CONTAINER_TAGS = frozenset({"tag:yaml.org,2002:seq", "tag:yaml.org,2002:map"})


def _loc(node: yaml.Node, file: str | None) -> Location:
    mark = node.start_mark
    return Location(file, mark.line + 1, mark.column + 1)


class _Converter:
    """Composed YAML nodes → ``LocDict``/``LocList``/scalars.

    libyaml composes (fast, in C); this walk builds the located containers, and
    scalars other than plain strings go through PyYAML's own safe constructors
    (``scalars``, a ``yaml.SafeLoader``).
    """

    def __init__(self, file: str | None, scalars: yaml.SafeLoader) -> None:
        self.file = file
        self.scalars = scalars
        self.seen: set[int] = set()
        self.in_alias = 0
        self.expanded = 0

    def convert(self, node: yaml.Node) -> Any:
        # An alias (*name) is the same composed node met again: what it expands to is
        # counted, so a "billion laughs" document is refused, not expanded.
        again = id(node) in self.seen
        self.seen.add(id(node))
        self.in_alias += again
        try:
            if self.in_alias:
                self.expanded += 1
                if self.expanded > MAX_ALIAS_EXPANSION:
                    raise WorkflowSyntaxError(
                        f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION:,} values",
                        _loc(node, self.file),
                        hint="a document that repeats an anchor (*name) inside anchors grows "
                        "exponentially; write the data out, or use fewer nested aliases",
                    )
            return self._convert(node)
        finally:
            self.in_alias -= again

    def _convert(self, node: yaml.Node) -> Any:
        # PyYAML's node kinds by their ``id`` ("scalar", "sequence", "mapping"), so that
        # this module needs no yaml class at import time.
        kind = getattr(node, "id", "")
        if kind == "scalar":
            if node.tag == _STR_TAG:
                return node.value
            return self.scalars.construct_object(node, deep=True)
        if node.tag not in _CONTAINER_TAGS:
            raise WorkflowSyntaxError(
                f"unsupported YAML tag '{node.tag}'", _loc(node, self.file),
                hint="workflows are plain data: remove the tag",
            )
        if kind == "sequence":
            out = LocList(self.convert(child) for child in node.value)
            out.loc = _loc(node, self.file)
            out.item_locs = [_loc(child, self.file) for child in node.value]
            return out
        return self.mapping(node)

    def mapping(self, node: yaml.Node) -> LocDict:
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

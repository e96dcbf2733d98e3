"""YAML reading that remembers where every mapping, key and item came from.

``load_yaml`` returns plain-looking data whose mappings are ``LocDict`` and whose
lists are ``LocList``: ordinary ``dict``/``list`` subclasses that also know their
``Location`` and the location of each key or item, so every later error can name
the file and line. Two readers, one result:

* ``tea._yamlparse.read_block`` reads the plain block style that nearly every tea
  file is written in, line by line, several times faster than the other;
* anything else (anchors, tags, folded scalars, escapes, any error) goes to PyYAML:
  libyaml composes, ``_Converter`` builds the located containers from its nodes,
  counts what aliases expand to (``MAX_ALIAS_EXPANSION``) and words every error.

Either way plain scalars get their types from PyYAML's resolver and constructors.
PyYAML is imported by the first ``load_yaml``: modules that only read locations
(and the process workers that import them) never pay for it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from tea._yamlparse import LocDict, LocList, NotSimple, at, read_block
from tea.errors import Location, WorkflowSyntaxError

if TYPE_CHECKING:
    import yaml

__all__ = ["MAX_ALIAS_EXPANSION", "LocDict", "LocList", "collector_paused", "load_yaml", "located", "location_of"]


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
    out.value_locs = value_locs
    return out


def load_yaml(text: str, file: str | None = None) -> Any:
    """Parse ``text``; a syntax error becomes ``WorkflowSyntaxError`` with file and line."""
    import yaml  # on first use, not at import (see the module docstring)

    with collector_paused():
        scalars = _Scalars(yaml)
        try:
            return read_block(text, file, scalars.plain)
        except NotSimple:
            return _load_with_pyyaml(yaml, text, file, scalars)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off inside (as it was before, after).

    For building much data that is no garbage, as ``load_yaml`` does: a 10,000-step
    mission is some 100,000 objects, and the collector would walk them again and
    again (four fifths of the time, measured). Nested uses are fine.
    """
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


def _load_with_pyyaml(yaml: Any, text: str, file: str | None, scalars: _Scalars) -> Any:
    try:
        node = yaml.compose(text, Loader=scalars.loader_class)
        try:
            return None if node is None else _Converter(file, scalars.loader).convert(node)
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
_PLAIN_TAGS = frozenset(f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "timestamp"))


class _Scalars:
    """Plain scalars to values with PyYAML's resolver and safe constructors (for the block reader)."""

    def __init__(self, yaml: Any) -> None:
        self.yaml = yaml
        self.loader_class: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        self.loader = yaml.SafeLoader("")
        self.table: dict[Any, Any] = self.loader_class.yaml_implicit_resolvers
        self.seen: dict[str, Any] = {}

    def plain(self, text: str) -> Any:
        """The value of the plain scalar ``text``; ``NotSimple`` for one the block reader leaves to PyYAML."""
        if text and text[0] not in self.table and None not in self.table:
            return text  # no implicit type starts with this character
        try:
            return self.seen[text]
        except KeyError:
            pass
        tag = self.loader.resolve(self.yaml.ScalarNode, text, (True, False))
        if tag == _STR_TAG:
            value: Any = text
        elif tag in _PLAIN_TAGS:
            try:
                value = self.loader.construct_object(self.yaml.ScalarNode(tag, text), deep=True)
            except Exception:  # PyYAML's own path reports it (a date like 2024-13-45)
                raise NotSimple from None
        else:
            raise NotSimple
        self.seen[text] = value
        return value


def _at(node: yaml.Node) -> int:
    mark = node.start_mark
    return at(mark.line + 1, mark.column + 1)


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

    def loc(self, node: yaml.Node) -> Location:
        return Location(self.file, node.start_mark.line + 1, node.start_mark.column + 1)

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
                        self.loc(node),
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
            try:
                return self.scalars.construct_object(node, deep=True)
            except ValueError as exc:  # a date that is none (2024-13-45), a huge exponent
                raise WorkflowSyntaxError(
                    f"'{node.value}' is not a valid {node.tag.rpartition(':')[2]}: {exc}", self.loc(node),
                    hint="quote it to keep it as text",
                ) from None
        if node.tag not in _CONTAINER_TAGS:
            raise WorkflowSyntaxError(
                f"unsupported YAML tag '{node.tag}'", self.loc(node),
                hint="workflows are plain data: remove the tag",
            )
        if kind == "sequence":
            out = LocList(self.convert(child) for child in node.value)
            out._file, out._at, out._items = self.file, _at(node), [_at(child) for child in node.value]
            return out
        return self.mapping(node)

    def mapping(self, node: yaml.Node) -> LocDict:
        out = LocDict()
        keys: dict[Any, int] = {}
        values: dict[Any, int] = {}
        out._file, out._at, out._keys, out._values = self.file, _at(node), keys, values
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
                raise WorkflowSyntaxError("a mapping key must be a scalar", self.loc(key_node))
            if key in merged_keys:
                merged_keys.discard(key)
            elif key in out:
                raise WorkflowSyntaxError(
                    f"duplicate key '{key}' in the same mapping",
                    self.loc(key_node),
                    hint="remove or rename one of them",
                )
            out[key] = self.convert(value_node)
            keys[key] = _at(key_node)
            values[key] = _at(value_node)
        return out

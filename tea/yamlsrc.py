"""YAML reading that remembers where every mapping, key and item came from.

``load_yaml`` returns plain-looking data whose mappings are ``LocDict`` and whose
lists are ``LocList``: ordinary ``dict``/``list`` subclasses that also know their
``Location`` and the location of each key or item, so every later error can name
the file and line. Parsing (``tea._yamlparse``, libyaml's C loader when
present) is imported on first use: reading locations never needs PyYAML.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tea.errors import Location

__all__ = ["LocDict", "LocList", "load_yaml", "located", "location_of"]

class LocDict(dict[str, Any]):
    """A dict that knows where it and each of its keys sit in the file."""

    loc: Location = Location()
    key_locs: dict[str, Location]

    def key_loc(self, key: str) -> Location:
        return getattr(self, "key_locs", {}).get(key, self.loc)

    def value_loc(self, key: str) -> Location:
        value = self.get(key)
        return getattr(value, "loc", None) or getattr(self, "value_locs", {}).get(
            key, self.key_loc(key)
        )


class LocList(list[Any]):
    """A list that knows where it and each of its items sit in the file."""

    loc: Location = Location()
    item_locs: list[Location]

    def item_loc(self, index: int) -> Location:
        locs = getattr(self, "item_locs", [])
        return locs[index] if index < len(locs) else self.loc


def load_yaml(text: str, file: str | None = None) -> Any:
    """Parse ``text``; a syntax error becomes ``WorkflowSyntaxError`` with file and line."""
    from tea._yamlparse import parse

    return parse(text, file)


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

"""The located containers that both YAML readers fill, and the positions they keep.

``LocDict`` and ``LocList`` (public through ``tea.yamlsrc``) keep the positions the
parser saw and build ``Location`` records only when one is asked for: a 10,000-step
mission has some 100,000 positions and an error report reads a handful.

A reader fills a container's slots directly: ``_file``, ``_at`` (its own position)
and ``_keys``/``_values`` (a mapping's) or ``_items`` (a list's), each position one
int from ``at(line, column)``. The fast block reader (``tea._yamlparse``) leaves
cheaper forms, unpacked on first use: a mapping's ``_rows`` and a list of names'
``_names`` (the slots' comments say what they hold).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Self, TypeVar, overload

from tea.errors import Location

__all__ = ["SHIFT", "LocDict", "LocList", "at"]

_T = TypeVar("_T")
SHIFT = 32
"""A position is one int, ``line << SHIFT | column`` (1-based): ints are not tracked by the
cyclic garbage collector, and a big document holds a great many positions."""
_COLUMN = (1 << SHIFT) - 1


def at(line: int, column: int) -> int:
    """The position of 1-based ``line`` and ``column``, as ``LocDict``/``LocList`` store it."""
    return line << SHIFT | column


def _location(file: str | None, pos: int) -> Location:
    return Location(file, pos >> SHIFT, pos & _COLUMN)


class _Lazy(Generic[_T]):
    """An attribute built from the parser's positions on first read, then stored on the instance."""

    def __init__(self, build: Callable[[Any], _T]) -> None:
        self.build = build
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> _T: ...
    def __get__(self, obj: object | None, owner: type | None = None) -> _T | Self:
        if obj is None:
            return self
        value = self.build(obj)
        obj.__dict__[self.name] = value
        return value


def _own_loc(obj: LocDict | LocList) -> Location:
    pos = getattr(obj, "_at", None)
    return Location() if pos is None else _location(obj._file, pos)


def _unpack(obj: LocDict) -> None:
    """``_keys`` and ``_values`` from the block reader's ``_rows``, if it left those."""
    if hasattr(obj, "_keys") or not hasattr(obj, "_rows"):
        return
    rows = obj._rows
    column = obj._at & _COLUMN
    keys: dict[Any, int] = {}
    values: dict[Any, int] = {}
    for n in range(0, len(rows), 4):
        key, row, value_row, value_column = rows[n:n + 4]
        keys[key] = (row + 1) << SHIFT | column
        values[key] = (value_row + 1) << SHIFT | (value_column + 1)
    obj._values = values
    obj._keys = keys  # last: a thread that sees _keys finds _values too


def _key_locs(obj: LocDict) -> dict[str, Location]:
    _unpack(obj)
    keys = getattr(obj, "_keys", None) or {}
    return {key: _location(obj._file, pos) for key, pos in keys.items()}


def _value_locs(obj: LocDict) -> dict[str, Location]:
    _unpack(obj)
    values = getattr(obj, "_values", None) or {}
    return {key: _location(obj._file, pos) for key, pos in values.items()}


def _item_positions(obj: LocList) -> list[int] | None:
    """The items' positions; those of a list of names (``_names``, "[a, b, c]") are worked out on first use."""
    items: list[int] | None = getattr(obj, "_items", None)
    if items is None and hasattr(obj, "_names"):
        items = []
        pos = obj._at + 1  # the first name starts just after the bracket
        for part in obj._names[1:-1].split(", "):
            items.append(pos)
            pos += len(part) + 2
        obj._items = items
    return items


def _item_locs(obj: LocList) -> list[Location]:
    return [_location(obj._file, pos) for pos in _item_positions(obj) or ()]


class LocDict(dict[str, Any]):
    """A dict that knows where it and each of its keys and values sit in the file.

    ``loc``, ``key_locs`` and ``value_locs`` may be assigned (data gathered from
    several places); until they are, they are built from the parser's positions.
    """

    # Slots for the parser's positions, so that most instances never grow a __dict__;
    # an instance the parser did not make has none of them set.
    __slots__ = ("__dict__", "_at", "_file", "_keys", "_rows", "_values")
    _file: str | None
    _at: int
    _keys: dict[Any, int]
    _values: dict[Any, int]
    _rows: list[Any]
    """Instead of ``_keys`` and ``_values``, until they are asked for: four items per key, in
    the order read: the key, its row, its value's row and column (0-based; the key's column
    is the mapping's own, in ``_at``)."""
    loc = _Lazy(_own_loc)
    key_locs = _Lazy(_key_locs)
    value_locs = _Lazy(_value_locs)

    def key_loc(self, key: str) -> Location:
        if "key_locs" in self.__dict__:
            return self.key_locs.get(key, self.loc)
        _unpack(self)
        pos = getattr(self, "_keys", {}).get(key)
        return self.loc if pos is None else _location(self._file, pos)

    def value_loc(self, key: str) -> Location:
        own: Location | None = getattr(self.get(key), "loc", None)
        return own or self.value_locs.get(key) or self.key_loc(key)


class LocList(list[Any]):
    """A list that knows where it and each of its items sit in the file."""

    __slots__ = ("__dict__", "_at", "_file", "_items", "_names")
    _file: str | None
    _at: int
    _items: list[int]
    _names: str
    """Instead of ``_items``, for a flow list of names until they are asked for: its text, "[a, b, c]"."""
    loc = _Lazy(_own_loc)
    item_locs = _Lazy(_item_locs)

    def item_loc(self, index: int) -> Location:
        if "item_locs" not in self.__dict__:
            items = _item_positions(self)
            if items is not None:
                return _location(self._file, items[index]) if index < len(items) else self.loc
        locs = self.item_locs
        return locs[index] if index < len(locs) else self.loc

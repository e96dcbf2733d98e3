"""Exact conversions between tea's JSON-like state and Lua values.

Python to Lua (``plain`` then ``LuaRuntime.table_from(..., recursive=True)``):
only ``dict``/``list``/``tuple``/``str``/``int``/``float``/``bool``/``None`` (and
``BranchResult``, which becomes its branch state overlaid with its record
fields) may cross; anything else is refused, because lupa would hand Lua a live
Python object. ``plain`` returns its argument itself when it is already plain,
so the common case costs one walk and no copy.

Lua to Python (``from_lua``): strings, booleans and nil map directly; integers
stay ints and integral floats within the 64-bit range become ints; a table whose
keys are all positive integers with the largest at most twice the key count is a
list (holes become ``None``), the empty table is ``{}``, any other table a dict.
Functions, coroutines and userdata are refused. Reading a table goes through
``lua_next`` (raw access), so no Lua metamethod runs while converting.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lupa.lua54 import LUA_MAXINTEGER, LUA_MININTEGER, lua_type

from executors.base import BranchResult

__all__ = ["MAX_DEPTH", "Budget", "ConversionError", "LimitExceeded", "from_lua", "plain"]

MAX_DEPTH = 100
"""Deepest nesting converted either way; deeper (or cyclic) data is refused."""

_SCALARS = frozenset({str, bool, float, type(None)})
_KEY_TYPES = (str, int, float)


class ConversionError(ValueError):
    """A value that has no exact counterpart on the other side."""


def _short(where: str) -> str:
    # A cyclic table makes a very long path; its start and end tell the story.
    return where if len(where) <= 80 else f"{where[:38]}...{where[-38:]}"


def _key(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)


def _check_int(value: int, where: str) -> None:
    if not LUA_MININTEGER <= value <= LUA_MAXINTEGER:
        raise ConversionError(f"{where} = {value} does not fit a 64-bit Lua integer")


def plain(value: Any, where: str, depth: int = 0) -> Any:
    """``value`` itself if it may cross into Lua as is, else a converted copy."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is int:
        _check_int(value, where)
        return value
    if depth >= MAX_DEPTH:
        raise ConversionError(f"{_short(where)} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        return _plain_mapping(value, where, depth)
    if isinstance(value, list | tuple):
        return _plain_sequence(value, where, depth)
    if isinstance(value, BranchResult):
        state = value.state
        record = {k: v for k, v in value.to_dict().items() if k != "state"}
        merged = {**state, **record, "state": state}
        return _plain_mapping(merged, where, depth)
    if isinstance(value, int):  # IntEnum and other int subclasses
        _check_int(value, where)
        return int(value)
    if isinstance(value, str | float):  # StrEnum and other subclasses
        return str(value) if isinstance(value, str) else float(value)
    raise ConversionError(f"{where} is a {kind.__name__}, which cannot be passed to Lua")


def _plain_mapping(value: Mapping[Any, Any], where: str, depth: int) -> Any:
    changed = not isinstance(value, dict)
    out: dict[Any, Any] = {}
    for key, item in value.items():
        if not isinstance(key, _KEY_TYPES):
            raise ConversionError(
                f"{where or 'a mapping'} has a key of type {type(key).__name__};"
                " Lua keys must be str or numbers"
            )
        converted = plain(item, _key(where, key), depth + 1)
        changed = changed or converted is not item
        out[key] = converted
    return out if changed else value


def _plain_sequence(value: list[Any] | tuple[Any, ...], where: str, depth: int) -> Any:
    changed = False
    out = []
    for index, item in enumerate(value):
        converted = plain(item, f"{where}[{index}]", depth + 1)
        changed = changed or converted is not item
        out.append(converted)
    return out if changed else value


class Budget:
    """What converting a Lua result may still spend: the node's time limit and a count of
    values standing for its memory limit (a shared sub-table is counted at every use, as
    it is copied at every use)."""

    __slots__ = ("deadline", "values")

    def __init__(self, deadline: float, values: float) -> None:
        self.deadline = deadline
        self.values = values

    def spend(self) -> None:
        self.values -= 1
        if self.values < 0:
            raise LimitExceeded("memory")
        if int(self.values) % 1024 == 0 and time.monotonic() > self.deadline:
            raise LimitExceeded("timeout")


class LimitExceeded(ConversionError):
    """Converting the result went past the node's time (``timeout``) or memory limit."""

    def __init__(self, limit: str) -> None:
        super().__init__(f"converting the result went past the {limit} limit")
        self.limit = limit


_UNLIMITED = Budget(float("inf"), float("inf"))


def from_lua(value: Any, where: str, depth: int = 0, budget: Budget = _UNLIMITED) -> Any:
    """The Python value of a Lua value returned by lupa; raises ``ConversionError``
    (``LimitExceeded`` when ``budget`` runs out)."""
    budget.spend()
    kind = type(value)
    if kind is float:
        if value.is_integer() and LUA_MININTEGER <= value <= LUA_MAXINTEGER:
            return int(value)
        return value
    if kind is str or kind is int or kind is bool or value is None:
        return value
    lua_kind = lua_type(value)
    if lua_kind != "table":
        raise ConversionError(f"{where} is a Lua {lua_kind}, which has no JSON-like equivalent")
    if depth >= MAX_DEPTH:
        raise ConversionError(
            f"{_short(where)} is nested deeper than {MAX_DEPTH} levels (or is cyclic)"
        )
    items = list(value.items())
    if not items:
        return {}
    if _is_array(items):
        out: list[Any] = [None] * max(key for key, _ in items)
        for key, item in items:
            out[key - 1] = from_lua(item, f"{where}[{key}]", depth + 1, budget)
        return out
    result: dict[Any, Any] = {}
    for key, item in items:
        if type(key) not in (str, int, float, bool):
            raise ConversionError(f"{where} has a Lua {lua_type(key)} as a key")
        result[key] = from_lua(item, _key(where, key), depth + 1, budget)
    return result


def _is_array(items: list[tuple[Any, Any]]) -> bool:
    largest = 0
    for key, _ in items:
        if type(key) is not int or key < 1:
            return False
        largest = max(largest, key)
    return largest <= 2 * len(items)

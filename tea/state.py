"""How a node's update is merged into the state.

By default a key's new value replaces the old one (a shallow merge). A key given
a reducer in ``state_schema`` combines old and new instead, the way LangGraph's
channels do, so branches and loops can accumulate without custom code::

    state_schema:
      log: {type: list, reducer: append}   # old + new (a list extends, anything else appends)
      total: {type: int, reducer: add}     # old + new
      meta: {type: dict, reducer: merge}   # {**old, **new}
      last: {type: str, reducer: replace}  # new (the default)

The first write of a key a reducer owns is combined with the reducer's starting
value (``[]`` for ``append``, ``{}`` for ``merge``; LangGraph's ``typ()``), or kept
as it is when the reducer has none, as LangGraph does: a reducer never sees a
private placeholder.

A ``Tracked`` state (a branch's) also keeps the raw writes of its reducer keys, in
order, so that a fan-in can merge them into the parent once more: a branch's final
value of such a key already holds what the parent had.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "CYCLIC",
    "MAX_NESTING",
    "Reduced",
    "Reducer",
    "Tracked",
    "Writes",
    "fast_copy",
    "get_reducer",
    "known_reducers",
    "merge",
    "reduce_into",
    "reducer_for",
    "register_reducer",
    "unsaveable",
]

ReduceFn = Callable[[Any, Any], Any]
Writes = dict[str, list[Any]]
"""Raw writes of reducer keys, by key, in the order they were made."""


class Reducer:
    """How one key combines writes: ``fn(old, new)``, and what the first write meets.

    ``initial`` makes the value the first write is combined with (LangGraph calls the
    key's type: ``list()``, ``int()``); ``None``: the first write is kept as it is.
    Calling a ``Reducer`` calls ``fn``. Immutable.
    """

    __slots__ = ("fn", "initial")

    def __init__(self, fn: ReduceFn, initial: Callable[[], Any] | None = None) -> None:
        self.fn = fn
        self.initial = initial

    def __call__(self, old: Any, new: Any) -> Any:
        return self.fn(old, new)

    def first(self, new: Any) -> Any:
        """The key's value after its first write ``new``."""
        return new if self.initial is None else self.fn(self.initial(), new)

    def __repr__(self) -> str:
        return f"Reducer({getattr(self.fn, '__name__', self.fn)!r})"


class Reduced(dict[str, Any]):
    """An update whose values already went through the reducers (from steps and loops).

    ``writes`` are the raw writes of reducer keys behind those values, for a branch
    to pass on to its fan-in.
    """

    __slots__ = ("writes",)

    def __init__(self, values: Mapping[str, Any] | None = None, writes: Writes | None = None) -> None:
        super().__init__(values or {})
        self.writes: Writes = writes or {}


class Tracked(dict[str, Any]):
    """A state that keeps the raw writes of its reducer keys (``writes``), in order."""

    __slots__ = ("writes",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes: Writes = {}


def _append(old: Any, new: Any) -> list[Any]:
    base = [] if old is None else list(old) if isinstance(old, list) else [old]
    if isinstance(new, list):
        return base + new
    return [*base, new]


def _add(old: Any, new: Any) -> Any:
    if old is None:
        return new
    return old + new


def _merge(old: Any, new: Any) -> Any:
    if not isinstance(old, Mapping):
        return dict(new) if isinstance(new, Mapping) else new
    if not isinstance(new, Mapping):
        return new
    return {**old, **new}


def _replace(old: Any, new: Any) -> Any:
    return new


_REDUCERS: dict[str, Reducer] = {
    "append": Reducer(_append, list),
    "add": Reducer(_add),
    "merge": Reducer(_merge, dict),
    "replace": Reducer(_replace),
}


def register_reducer(name: str, fn: ReduceFn) -> None:
    """Make ``reducer: <name>`` in ``state_schema`` call ``fn(old, new)`` (the first
    write of a key is kept as it is, unless ``fn`` is a ``Reducer`` with a start)."""
    _REDUCERS[name] = fn if isinstance(fn, Reducer) else Reducer(fn)


def known_reducers() -> list[str]:
    return sorted(_REDUCERS)


def get_reducer(name: str) -> Reducer:
    return _REDUCERS[name]


_TYPE_STARTS: dict[str, Callable[[], Any]] = {"list": list, "dict": dict, "int": int, "float": float, "str": str}


def reducer_for(name: str, type_name: Any = None) -> Reducer:
    """The reducer ``name`` for a key of ``state_schema`` type ``type_name``: a reducer
    without a start of its own starts from the type's empty value (``int``: 0), as
    LangGraph's do. ``KeyError`` for an unknown name."""
    reducer = _REDUCERS[name]
    start = _TYPE_STARTS.get(type_name) if isinstance(type_name, str) else None
    if reducer.initial is not None or start is None:
        return reducer
    return Reducer(reducer.fn, start)


def reduce_into(state: dict[str, Any], key: str, value: Any, reducer: ReduceFn) -> None:
    """Combine one write of ``key`` into ``state`` (a ``Tracked`` state keeps the write)."""
    if key in state:
        state[key] = reducer(state[key], value)
    else:
        state[key] = reducer.first(value) if isinstance(reducer, Reducer) else value
    if isinstance(state, Tracked):
        state.writes.setdefault(key, []).append(value)


def merge(
    state: dict[str, Any], update: Mapping[str, Any] | None, reducers: Mapping[str, ReduceFn]
) -> dict[str, Any]:
    """Apply ``update`` to ``state`` in place and return it."""
    if not update:
        return state
    if isinstance(update, Reduced):
        state.update(update)
        if update.writes and isinstance(state, Tracked):
            for key, values in update.writes.items():
                state.writes.setdefault(key, []).extend(values)
        return state
    if not reducers:
        state.update(update)
        return state
    for key, value in update.items():
        reducer = reducers.get(key)
        if reducer is None:
            state[key] = value
        else:
            reduce_into(state, key, value, reducer)
    return state


def fast_copy(value: Any) -> Any:
    """A deep copy of JSON-like data (dicts, lists, scalars); other objects via ``copy.deepcopy``.

    Several times faster than ``copy.deepcopy`` on the plain data states hold. An
    object that cannot be copied (a lock, a connection) is shared, not copied:
    copying it would be meaningless, and a strategy that must serialise it says so
    itself, naming the key.
    """
    kind = type(value)
    if kind is dict:
        return {k: fast_copy(v) for k, v in value.items()}
    if kind is list:
        return [fast_copy(v) for v in value]
    if kind in _ATOMS:
        return value
    import copy

    try:
        return copy.deepcopy(value)
    except Exception:
        return value


_ATOMS = frozenset({str, int, float, bool, type(None), bytes})



_NESTED = (dict, list, tuple)
CYCLIC = "it contains itself"
MAX_NESTING = 200
"""Deepest nesting of dicts, lists and tuples a node's update may hold: deeper data
could not be saved or printed as JSON (the encoder recurses once per level)."""


def unsaveable(update: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(key, why)`` for the first value of ``update`` that contains itself (a dict, list
    or tuple holding itself at any depth) or nests past ``MAX_NESTING``, else ``None``:
    such a value can be neither saved nor printed as JSON. A scalar value costs one type
    check; a container, one visit of each container inside it (once, however shared)."""
    for key, value in update.items():
        if type(value) not in _ATOMS and isinstance(value, _NESTED):
            why = _nesting_problem(value)
            if why is not None:
                return key, why
    return None


def _nesting_problem(value: Any) -> str | None:
    # Depth first, with the containers on the current path: meeting one of them again is a
    # cycle; meeting a finished one again is only sharing (JSON writes it twice).
    path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[Any, bool]] = [(value, False)]
    while stack:
        item, leaving = stack.pop()
        ident = id(item)
        if leaving:
            path.discard(ident)
            done.add(ident)
            continue
        if ident in path:
            return CYCLIC
        if ident in done:
            continue
        if len(path) >= MAX_NESTING:
            return f"it is nested more than {MAX_NESTING} levels deep"
        children = item.values() if isinstance(item, dict) else item
        path.add(ident)
        stack.append((item, True))
        if not _ATOMS.issuperset(map(type, children)):  # a list of scalars is checked in C
            stack.extend((child, False) for child in children if isinstance(child, _NESTED))
    return None

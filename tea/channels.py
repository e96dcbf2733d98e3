"""The state of a graph built the LangGraph way: its keys (channels) and how a superstep's
writes land on them.

A state schema (a ``TypedDict``, a dataclass or a pydantic model) declares the keys;
``Annotated[T, fn]`` gives a key the reducer ``fn(old, new)``. As in LangGraph:

* a key with a reducer starts at ``T()`` when ``T`` can be built without arguments
  (``list`` → ``[]``, ``int`` → ``0``), so the state has it from the start and the
  reducer's first call sees that value; otherwise the key is absent until its first
  write, which is kept as it is;
* a key without a reducer takes one write per superstep: two tasks of one step
  writing it is an ``InvalidUpdateError``;
* a step's writes are applied task by task in a fixed order (``tea.supersteps``
  sorts the tasks), so results never depend on which task finished first.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import inspect
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from tea.errors import RunError, SchemaError
from tea.graph import Channel
from tea.state import Reducer

__all__ = ["InvalidUpdateError", "apply_writes", "channels_of", "initial_values", "schema_keys"]

_ABSTRACT = {
    collections.abc.Sequence: list,
    collections.abc.MutableSequence: list,
    collections.abc.Set: set,
    collections.abc.MutableSet: set,
    collections.abc.Mapping: dict,
    collections.abc.MutableMapping: dict,
}


class InvalidUpdateError(RunError):
    """A superstep's writes that cannot be applied (two values for a key without a reducer)."""


def schema_keys(schema: Any) -> dict[str, Any]:
    """The annotated keys of a state schema, with their annotations (``{}``: none)."""
    if schema is None or (not hasattr(schema, "__annotations__") and not dataclasses.is_dataclass(schema)):
        return {}
    try:
        hints = typing.get_type_hints(schema, include_extras=True)
    except (NameError, TypeError) as exc:
        raise SchemaError(f"cannot read the state schema {schema!r}: {exc}") from exc
    fields = getattr(schema, "model_fields", None)  # a pydantic model: its fields, not its settings
    return {
        key: hint for key, hint in hints.items()
        if not key.startswith("__") and typing.get_origin(hint) is not typing.ClassVar
        and (not isinstance(fields, Mapping) or key in fields)
    }


def channels_of(schema: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Channel]:
    """The channels a schema declares; ``extra`` gives reducers (``fn(old, new)``) by key."""
    channels = {key: Channel(key, _reducer(key, hint)) for key, hint in schema_keys(schema).items()}
    for key, fn in (extra or {}).items():
        channels[key] = Channel(key, fn if isinstance(fn, Reducer) else Reducer(fn))
    return channels


def _reducer(key: str, hint: Any) -> Reducer | None:
    hint = _unwrap(hint)
    metadata = getattr(hint, "__metadata__", ())
    if not metadata or not callable(metadata[-1]):
        return None
    fn = metadata[-1]
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return Reducer(fn, _start(hint.__origin__))
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) != 2:
        raise SchemaError(
            f"state key '{key}': a reducer takes two arguments (old, new), "
            f"{getattr(fn, '__name__', fn)} takes {len(positional)}",
        )
    return Reducer(fn, _start(hint.__origin__))


def _unwrap(hint: Any) -> Any:
    """``hint`` without ``Required``/``NotRequired`` around it."""
    origin = typing.get_origin(hint)
    if origin in (typing.Required, typing.NotRequired):
        return _unwrap(typing.get_args(hint)[0])
    return hint


def _start(typ: Any) -> Any:
    """How a reducer key starts (LangGraph's ``typ()``): a factory, or ``None`` when the type
    cannot be built without arguments."""
    while hasattr(typ, "__origin__"):
        typ = typ.__origin__
    typ = _ABSTRACT.get(typ, typ)
    try:
        typ()
    except Exception:
        return None
    return typ


def initial_values(channels: Mapping[str, Channel]) -> dict[str, Any]:
    """The state before any write: every reducer key that has a start."""
    values: dict[str, Any] = {}
    for key, channel in channels.items():
        reducer = channel.reducer
        if reducer is not None and reducer.initial is not None:
            values[key] = reducer.initial()
    return values


def apply_writes(
    values: dict[str, Any], channels: Mapping[str, Channel], writes: Iterable[tuple[str, Any]], *, any_key: bool
) -> set[str]:
    """Apply one superstep's writes (in order) to ``values``; returns the keys written.

    Writes to keys the schema does not declare are dropped (kept when ``any_key``).
    """
    grouped: dict[str, list[Any]] = {}
    for key, value in writes:
        if key in channels or any_key:
            grouped.setdefault(key, []).append(value)
    for key, items in grouped.items():
        channel = channels.get(key)
        reducer = channel.reducer if channel is not None else None
        if reducer is None:
            if len(items) > 1:
                raise InvalidUpdateError(
                    f"At key '{key}': Can receive only one value per step. "
                    "Use an Annotated key to handle multiple values.",
                    hint=f"declare a reducer for '{key}' (Annotated[list, operator.add]) or let one node write it",
                )
            values[key] = items[0]
            continue
        if key not in values:
            values[key], items = reducer.first(items[0]), items[1:]
        for item in items:
            values[key] = reducer(values[key], item)
    return set(grouped)

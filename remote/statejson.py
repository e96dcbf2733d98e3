"""Whether branch state survives the trip to a host and back as JSON, unchanged.

The remote strategy carries state as JSON. ``json.dumps`` alone would accept a
dict with int keys (they arrive as strings) and refuse a set without saying
where it is, so ``json_check`` names the first value that would not come back
as it left, by its path (``state['scores'][2]``) and why. Tuples are the one
accepted change: they arrive as lists.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from tea.errors import SerializationError

__all__ = ["json_check", "json_encode", "json_problem", "json_text", "not_json"]

_HINT = (
    "the remote strategy carries state as JSON: keep plain data there (str, int, float, "
    "bool, None, lists and dicts with string keys); tuples arrive as lists"
)


def json_text(state: Mapping[str, Any], what: str = "state", *, branch: str | None = None) -> str:
    """``state`` as JSON text; raises ``SerializationError`` naming the first value JSON
    would not carry unchanged (tuples excepted: they arrive as lists)."""
    text, problem = json_encode(state)
    if text is None:
        raise not_json(what, problem or "", branch=branch)
    return text


def not_json(what: str, problem: str, *, branch: str | None = None) -> SerializationError:
    """The error for ``what`` (``the state of branch x``), which JSON cannot carry because
    of ``problem`` (as ``json_problem`` describes it)."""
    return SerializationError(f"{what} cannot be sent as JSON: {problem}", branch=branch, hint=_HINT)


def json_check(state: Mapping[str, Any], what: str = "state", *, branch: str | None = None) -> None:
    """Raise ``SerializationError`` naming the first value of ``state`` JSON cannot carry."""
    json_text(state, what, branch=branch)


def json_problem(state: Mapping[str, Any]) -> str | None:
    """The first value that does not survive a JSON round trip, described; ``None`` if all do."""
    return json_encode(state)[1]


def json_encode(state: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(JSON text, None)``, or ``(None, the first value JSON would not carry unchanged)``."""
    value = state if isinstance(state, dict) else dict(state)
    text: str | None = None
    try:
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        # The fast path, all in C: most states are plain data, and then equal after a trip.
        if json.loads(text) == value:
            return text, None
    except (TypeError, ValueError, RecursionError):
        pass
    problem = _walk(value, "state", set())
    if problem is None and text is not None:
        return text, None  # only tuples differed
    return None, problem or "it does not survive a JSON round trip"


def _walk(value: Any, path: str, parents: set[int]) -> str | None:
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"{path} is {value!r}, which JSON cannot represent"
    if isinstance(value, Mapping | list | tuple):
        if id(value) in parents:
            return f"{path} contains itself"
        parents.add(id(value))
        try:
            return _walk_container(value, path, parents)
        finally:
            parents.discard(id(value))
    if isinstance(value, set | frozenset):
        return f"{path} is a {type(value).__name__}; JSON has no sets (store a sorted list)"
    if isinstance(value, bytes | bytearray):
        return f"{path} is {type(value).__name__}; JSON has no bytes (decode or base64 them)"
    kind = type(value)
    return f"{path} is a {kind.__module__}.{kind.__qualname__}, which JSON cannot carry"


def _walk_container(
    value: Mapping[Any, Any] | list[Any] | tuple[Any, ...], path: str, parents: set[int]
) -> str | None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                arrives = f", so it would arrive as {json.dumps(key)!r}" if _scalar(key) else ""
                return f"{path} has the {type(key).__name__} key {key!r}; JSON keys are strings{arrives}"
            found = _walk(item, f"{path}[{key!r}]", parents)
            if found is not None:
                return found
        return None
    for index, item in enumerate(value):
        found = _walk(item, f"{path}[{index}]", parents)
        if found is not None:
            return found
    return None


def _scalar(key: Any) -> bool:
    return key is None or isinstance(key, bool | int | float)
